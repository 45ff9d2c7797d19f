package backend

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// connectionNameRe is the name rule of connections/<name> (framework.GenericNameRegex), so a
// role can only name something that can exist; ".." (a path step) is refused as well.
var connectionNameRe = regexp.MustCompile(`^\w(([\w-.]+)?\w)?$`)

func roleFields() map[string]*framework.FieldSchema {
	return withName("role", map[string]*framework.FieldSchema{
		"connection": {Type: framework.TypeString, Required: true,
			Description: "Name of the connection (connections/<name>) whose app and keys mint this role's tokens."},
		"username": {Type: framework.TypeString, Required: true,
			Description: "Salesforce username the token is minted for (the JWT sub), e.g. integration@acme.com. The user must be pre-authorised on the app."},
		"ttl": {Type: framework.TypeDurationSecond, Default: int(defaultRoleTTL.Seconds()),
			Description: "per_lease: the lease TTL of each read. shared: the minimum remaining life a reader is guaranteed; a cached token with less left is replaced before it is handed out."},
		"max_ttl": {Type: framework.TypeDurationSecond, Default: int(defaultRoleMaxTTL.Seconds()),
			Description: "per_lease: the lease's maximum TTL across renewals (never beyond session_timeout). Refused on a token_mode=shared role: a shared token has no lease to renew, so max_ttl would be ignored."},
		"min_remaining_ttl": {Type: framework.TypeDurationSecond,
			Description: "token_mode=shared: the name that says what ttl means there, the minimum remaining life a reader is guaranteed (a cached token with less left is replaced first). Sets ttl; give one of the two."},
		"token_mode": {Type: framework.TypeString, Default: tokenModeShared, AllowedValues: []any{tokenModeShared, tokenModePerLease},
			Description: "shared: one cached token per role for every reader, no Vault lease. per_lease: a fresh token per read under a lease, revoked at Salesforce when the lease ends."},
		"session_timeout": {Type: framework.TypeDurationSecond, Default: int(defaultSessionTimeout.Seconds()),
			Description: "The Salesforce session timeout for this user and app (Connected App session policy, else profile, else org: 2h by default). Salesforce does not report a token's lifetime; no token is handed out or leased beyond it."},
		"bound_cidrs": {Type: framework.TypeCommaStringSlice,
			Description: "When set, creds/<role> is only served to clients from these networks (CIDRs or addresses)."},
	})
}

func pathRoles(b *backend) []*framework.Path {
	return []*framework.Path{
		listPath("roles/?$", "roles", "roles", rolesPrefix),
		pathSpec{pattern: entryPath("roles/", "/reset"), verb: "reset", suffix: "role", fields: withName("role", nil),
			ops:      map[logical.Operation]framework.OperationHandler{logical.UpdateOperation: changes(b.pathRoleReset, "Drop and revoke a role's cached token.")},
			synopsis: "Drop a role's cached token and revoke it at Salesforce.", help: roleResetHelp}.path(),
		pathSpec{pattern: entryPath("roles/", ""), suffix: "role", fields: roleFields(), exists: b.roleExists,
			ops: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: changes(b.pathRoleWrite, "Create a role."),
				logical.UpdateOperation: changes(b.pathRoleWrite, "Update a role."),
				logical.ReadOperation:   plain(b.pathRoleRead, "Read a role and its usage."),
				logical.DeleteOperation: plain(b.pathRoleDelete, "Delete a role."),
			},
			synopsis: "Manage a role: the Salesforce username and token policy an application may ask for.",
			help:     roleHelp}.path(),
	}
}

func (b *backend) roleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	r, err := getRole(ctx, req.Storage, d.Get("name").(string))
	return r != nil, err
}

func (b *backend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name := d.Get("name").(string)
	if resp := validName(name); resp != nil {
		return resp, nil
	}
	defer b.lockRole(name)()

	old, err := getRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	now := b.now().UTC()
	role := defaultRole(now)
	if old != nil {
		cp := *old
		role = &cp
	}
	if ferr := applyRoleFields(role, d); ferr != nil {
		return ferr.response(), nil
	}
	role.UpdatedAt = now

	// Hold the connection's read lock while checking it exists and writing the role, so a
	// concurrent connection delete cannot leave this role pointing at nothing.
	cl := b.connLock(role.Connection)
	cl.RLock()
	defer cl.RUnlock()
	conn, err := getConnection(ctx, req.Storage, role.Connection)
	if err != nil {
		return nil, err
	}
	if conn == nil {
		return fieldErr("connection", "does not exist: create it at connections/<name> first (see `vault list <mount>/connections`)").response(), nil
	}
	switch {
	case conn.clientCredentials() && role.Username != "":
		return fieldErr("username", "must be empty on a client_credentials connection: its tokens act for the app's run-as user, set on the app in Salesforce").response(), nil
	case !conn.clientCredentials() && role.Username == "":
		return fieldErr("username", "is required: the Salesforce username the tokens are for, e.g. integration@acme.com").response(), nil
	}
	if ferr := conn.allowsRole(name, role.Username); ferr != nil {
		return ferr.response(), nil
	}
	if err := b.putRole(ctx, req.Storage, name, role); err != nil {
		return nil, err
	}
	// A changed username, connection or mode makes the cached token wrong for this role.
	if old != nil && (old.Username != role.Username || old.Connection != role.Connection || old.TokenMode != role.TokenMode || role.SessionTimeout < old.SessionTimeout) {
		b.tokens.drop(name)
	}
	return nil, nil
}

// applyRoleFields sets the given fields on r and checks the result as a whole.
func applyRoleFields(r *roleEntry, d *framework.FieldData) *fieldError {
	if v, ok := d.GetOk("connection"); ok {
		r.Connection = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("username"); ok {
		r.Username = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("token_mode"); ok {
		r.TokenMode = v.(string)
	}
	if v, ok := d.GetOk("bound_cidrs"); ok {
		r.BoundCIDRs = nil
		for _, c := range v.([]string) {
			if c = strings.TrimSpace(c); c != "" {
				r.BoundCIDRs = append(r.BoundCIDRs, c)
			}
		}
	}
	// min_remaining_ttl is shared mode's name for ttl: checked and stored as ttl.
	alias, aliasSet, ferr := durationField(d, "min_remaining_ttl", time.Minute, maxSessionTimeout, false)
	if ferr != nil {
		return ferr
	}
	_, ttlSet := d.GetOk("ttl")
	_, maxTTLSet := d.GetOk("max_ttl")
	if aliasSet && ttlSet {
		return fieldErr("min_remaining_ttl", "and ttl are the same setting: give one of them")
	}
	for _, f := range []struct {
		name     string
		dst      *time.Duration
		min, max time.Duration
	}{
		{"ttl", &r.TTL, time.Minute, maxSessionTimeout},
		{"max_ttl", &r.MaxTTL, time.Minute, maxSessionTimeout},
		{"session_timeout", &r.SessionTimeout, minSessionTimeout, maxSessionTimeout},
	} {
		v, set, ferr := durationField(d, f.name, f.min, f.max, false)
		if ferr != nil {
			return ferr
		}
		if set {
			*f.dst = v
		}
	}
	if aliasSet {
		r.TTL = alias
	}

	switch {
	case r.Connection == "":
		return fieldErr("connection", "is required: the name of a connection (see `vault list <mount>/connections`)")
	case len(r.Connection) > maxNameLength || !connectionNameRe.MatchString(r.Connection) || strings.Contains(r.Connection, ".."):
		return fieldErr("connection", "is not a connection name: letters, digits, '-', '_' and '.', starting and ending with a letter or digit, no '..'")
	}
	if r.Username != "" {
		if ferr := validUsername("username", r.Username); ferr != nil {
			return ferr
		}
	}
	if ferr := oneOf("token_mode", r.TokenMode, tokenModeShared, tokenModePerLease); ferr != nil {
		return ferr
	}
	if err := r.parseCIDRs(); err != nil {
		return fieldErr("bound_cidrs", "has an entry that is neither a CIDR nor an address: use e.g. 10.0.0.0/8,192.168.1.10")
	}
	if r.TokenMode == tokenModePerLease && r.MaxTTL < r.TTL {
		return fieldErr("max_ttl", "(%s) must be at least ttl (%s)", r.MaxTTL, r.TTL)
	}
	// Only a write that names these fields is refused: a role stored with max_ttl before the
	// check existed still reads, updates and mints.
	if r.TokenMode == tokenModeShared && maxTTLSet {
		return fieldErr("max_ttl", "is ignored with token_mode=shared (a shared token has no lease to renew): leave it out, or use token_mode=per_lease")
	}
	if r.TokenMode == tokenModePerLease && aliasSet {
		return fieldErr("min_remaining_ttl", "applies to token_mode=shared only; a per_lease role's lease length is ttl")
	}
	if r.TokenMode == tokenModeShared && r.TTL >= r.SessionTimeout {
		ttlName := "ttl"
		if aliasSet {
			ttlName = "min_remaining_ttl"
		}
		return fieldErr(ttlName, "(%s) must be shorter than session_timeout (%s) with token_mode=shared: ttl is the life a reader is guaranteed, so a longer one would make every read mint a new token", r.TTL, r.SessionTimeout)
	}
	return nil
}

func (b *backend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	lock := b.roleLock(name)
	lock.RLock()
	defer lock.RUnlock()
	r, err := getRole(ctx, req.Storage, name)
	if err != nil || r == nil {
		return nil, err
	}
	u, err := b.usageOf(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	cidrs := r.BoundCIDRs
	if cidrs == nil {
		cidrs = []string{}
	}
	return &logical.Response{Data: map[string]any{
		"connection":       r.Connection,
		"username":         r.Username,
		"ttl":              int64(r.TTL.Seconds()),
		"max_ttl":          int64(r.MaxTTL.Seconds()),
		"token_mode":       r.TokenMode,
		"session_timeout":  int64(r.SessionTimeout.Seconds()),
		"bound_cidrs":      cidrs,
		"created_at":       formatTime(r.CreatedAt),
		"updated_at":       formatTime(r.UpdatedAt),
		"tokens_minted":    u.TokensMinted,
		"last_minted_at":   formatTime(u.LastMintedAt),
		"last_key_version": u.LastKeyVersion,
		"last_error":       u.LastError,
		"last_error_at":    formatTime(u.LastErrorAt),
	}}, nil
}

func (b *backend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	defer b.lockRole(name)()
	if err := req.Storage.Delete(ctx, rolesPrefix+name); err != nil {
		return nil, err
	}
	if err := req.Storage.Delete(ctx, usagePrefix+name); err != nil {
		return nil, err
	}
	b.forgetUsage(name)
	b.metrics.forgetRole(name)
	b.roles.drop(name)
	// A shared token is not revoked on delete: readers may still hold it. reset does that.
	b.tokens.drop(name)
	return nil, nil
}

func (b *backend) pathRoleReset(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name := d.Get("name").(string)
	role, err := b.cachedRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if role == nil {
		return logical.ErrorResponse("unknown role %q", name), nil
	}
	t := b.tokens.take(name)
	if t == nil {
		return &logical.Response{Data: map[string]any{"revoked": false, "message": "no cached token"}}, nil
	}
	// Revoked through the client that minted it: at the origin that issued it, whatever the
	// connection names now.
	if err := t.client.Revoke(ctx, t.token.AccessToken); err != nil {
		// The token is already out of the cache: the next read mints a new one either way.
		return mintErrorResponse(err)
	}
	b.Logger().Info("revoked a role's shared token on operator request", "role", name)
	return &logical.Response{Data: map[string]any{"revoked": true}}, nil
}

const roleHelp = `
A role is what an application may ask for: a token for one Salesforce username on one
connection, and how it is cached. Applications read creds/<role>; policies grant read on that
path only.

Usage fields on read: tokens_minted, last_minted_at, last_key_version, last_error, last_error_at.
They are written to storage in the background, at most once a second per role; a crash can lose
the last second of counts.
`

const roleResetHelp = `
Drops the role's cached shared token and revokes it at Salesforce (incident response). The next
read of creds/<role> mints a new token. Per-lease tokens are revoked through their leases
("vault lease revoke -prefix <mount>/creds/<role>").
`
