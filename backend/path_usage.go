package backend

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/singleflight"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// connections/<name>/usage: the org's daily API allowance and the integration users' recent
// logins, as Salesforce reports them to the connection's own login (protocol §12). Not to be
// confused with usage.go, which is the roles' own mint log kept in Vault.

const (
	// orgUsageMaxAge is how long an answer is served from memory: reading the path never costs
	// more than one set of Salesforce calls per connection per minute.
	orgUsageMaxAge = time.Minute
	// orgUsageLogins bounds the LoginHistory rows read (newest first).
	orgUsageLogins = 50
	// orgUsageTimeout bounds one fetch, which readers share whatever their own deadlines.
	orgUsageTimeout = 30 * time.Second
)

// orgUsage is one fetch's answer. It is never changed once stored.
type orgUsage struct {
	fetchedAt time.Time
	max       int
	remaining int
	users     []string // the usernames whose logins were read
	logins    []orgLogin
	err       error // a failed fetch, kept as long as an answer so failures are rate-limited too
}

type orgLogin struct {
	username string
	row      salesforce.LoginHistoryRow
}

// orgUsageCache keeps each connection's last answer; its zero value is ready to use. The mutex
// guards only the map, never a Salesforce call; concurrent readers share one fetch.
type orgUsageCache struct {
	mu     sync.Mutex
	last   map[string]*orgUsage
	gen    map[string]uint64 // bumped by forget: a fetch begun before it is not kept
	flight singleflight.Group
}

func (c *orgUsageCache) get(name string) *orgUsage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last[name]
}

func (c *orgUsageCache) generation(name string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen[name]
}

// put keeps u if the connection has not been written since gen was read; false: it was (u
// describes the org the connection named before), and u is not kept.
func (c *orgUsageCache) put(name string, gen uint64, u *orgUsage) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen[name] != gen {
		return false
	}
	if c.last == nil {
		c.last = map[string]*orgUsage{}
	}
	c.last[name] = u
	return true
}

// forget drops the answer of a connection written or deleted: a re-pointed connection must
// not show the previous org's figures and logins.
func (c *orgUsageCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.last, name)
	if c.gen == nil {
		c.gen = map[string]uint64{}
	}
	c.gen[name]++
}

func pathUsage(b *backend) []*framework.Path {
	return []*framework.Path{
		pathSpec{pattern: entryPath("connections/", "/usage"), verb: "read", suffix: "connection-usage", fields: withName("connection", nil),
			ops:      map[logical.Operation]framework.OperationHandler{logical.ReadOperation: plain(b.pathUsageRead, "Read the org's API usage and the integration users' recent logins.")},
			synopsis: "Read the org's daily API requests and the recent Salesforce logins of the users the connection's roles mint for.", help: usageHelp}.path(),
	}
}

func (b *backend) pathUsageRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	conn, err := getConnection(ctx, req.Storage, name)
	if err != nil || conn == nil {
		return nil, err
	}
	u, cached, err := b.orgUsageOf(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if u.err != nil {
		return usageErrorResponse(u.err)
	}
	logins := make([]map[string]any, 0, len(u.logins))
	for _, l := range u.logins {
		logins = append(logins, map[string]any{"username": l.username, "user_id": l.row.UserID, "login_time": l.row.LoginTime,
			"status": l.row.Status, "source_ip": l.row.SourceIP, "application": l.row.Application, "tls_protocol": l.row.TLSProtocol})
	}
	return &logical.Response{Data: map[string]any{
		"connection": name,
		"fetched_at": formatTime(u.fetchedAt),
		"cached":     cached,
		"daily_api_requests": map[string]any{
			"max": u.max, "remaining": u.remaining, "used": u.max - u.remaining,
		},
		"users":         u.users,
		"login_history": logins,
	}}, nil
}

// orgUsageOf is the connection's answer: the stored one if younger than orgUsageMaxAge
// (cached), else a new fetch shared by every reader that asks meanwhile.
func (b *backend) orgUsageOf(ctx context.Context, s logical.Storage, name string) (*orgUsage, bool, error) {
	fresh := func() *orgUsage {
		if u := b.orgUsage.get(name); u != nil && b.now().Sub(u.fetchedAt) < orgUsageMaxAge {
			return u
		}
		return nil
	}
	if u := fresh(); u != nil {
		return u, true, nil
	}
	type answer struct {
		u      *orgUsage
		cached bool
	}
	v, err, _ := b.orgUsage.flight.Do(name, func() (any, error) {
		if u := fresh(); u != nil { // a fetch finished between our look and this flight
			return answer{u, true}, nil
		}
		// The fetch serves every reader waiting on it: one reader leaving must not cancel it.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), orgUsageTimeout)
		defer cancel()
		gen := b.orgUsage.generation(name)
		u, err := b.fetchOrgUsage(fctx, s, name)
		if err != nil {
			return nil, err
		}
		if b.orgUsage.put(name, gen, u) && u.err == nil {
			b.metrics.dailyAPIRequests(name, u.max, u.remaining)
		}
		return answer{u, false}, nil
	})
	if err != nil {
		return nil, false, err
	}
	a := v.(answer)
	return a.u, a.cached, nil
}

// fetchOrgUsage makes one set of Salesforce calls as the connection's own user: the users'
// ids, their login history, then the limits (last, so the figure counts this set's queries).
// A Salesforce failure is kept in the answer (u.err); err is Vault's own (storage).
func (b *backend) fetchOrgUsage(ctx context.Context, s logical.Storage, name string) (*orgUsage, error) {
	usernames, err := b.integrationUsers(ctx, s, name)
	if err != nil {
		return nil, err
	}
	u := &orgUsage{fetchedAt: b.now().UTC(), users: usernames}
	api, err := b.connectionAPI(ctx, s, name, "connection", defaultAPIVersion)
	if err != nil {
		u.err = err
		return u, nil
	}
	defer api.close()
	u.logins, u.err = orgLogins(ctx, api, usernames)
	if u.err == nil {
		var lim salesforce.APIRequests
		lim, u.err = api.client.DailyAPIRequests(ctx, api.sess)
		u.max, u.remaining = lim.Max, lim.Remaining
	}
	if u.err != nil {
		b.Logger().Warn("reading the org's usage failed", "connection", name, "error", u.err)
	}
	return u, nil
}

// orgLogins reads the newest LoginHistory rows of usernames and of the logged-in user (on a
// client-credentials connection, the app's run-as user).
func orgLogins(ctx context.Context, api *credentialsAPI, usernames []string) ([]orgLogin, error) {
	names := map[string]string{}
	if len(usernames) > 0 {
		ids, err := api.client.UserIDs(ctx, api.sess, usernames)
		if err != nil {
			return nil, err
		}
		names = ids
	}
	ids := make([]string, 0, len(names)+1)
	for id := range names {
		ids = append(ids, id)
	}
	if usernameOf(names, api.userID) == "" && api.userID != "" {
		ids = append(ids, api.userID)
		names[api.userID] = api.username
	}
	if len(ids) == 0 {
		return []orgLogin{}, nil
	}
	slices.Sort(ids)
	rows, err := api.client.LoginHistory(ctx, api.sess, ids, orgUsageLogins)
	if err != nil {
		return nil, err
	}
	out := make([]orgLogin, 0, len(rows))
	for _, r := range rows {
		out = append(out, orgLogin{username: usernameOf(names, r.UserID), row: r})
	}
	return out, nil
}

// usernameOf finds a user id's username, ids compared in their 15-character form.
func usernameOf(names map[string]string, id string) string {
	short := func(s string) string { return s[:min(len(s), 15)] }
	for k, v := range names {
		if short(k) == short(id) {
			return v
		}
	}
	return ""
}

// integrationUsers are the distinct usernames the connection's roles mint for.
func (b *backend) integrationUsers(ctx context.Context, s logical.Storage, conn string) ([]string, error) {
	roles, err := b.rolesUsing(ctx, s, conn)
	if err != nil {
		return nil, err
	}
	users := []string{}
	for _, name := range roles {
		r, err := b.cachedRole(ctx, s, name)
		if err != nil {
			return nil, err
		}
		if r != nil && r.Username != "" && !slices.Contains(users, r.Username) {
			users = append(users, r.Username)
		}
	}
	slices.Sort(users)
	return users, nil
}

// usageErrorResponse answers a failed fetch: a refusal (bad configuration, a missing
// permission) is the operator's 400 with what to check, an unreachable Salesforce a 502.
func usageErrorResponse(err error) (*logical.Response, error) {
	var fe *fieldError
	if errors.As(err, &fe) {
		return fe.response(), nil
	}
	if h := salesforce.UsageHint(err); h != "" {
		return logical.ErrorResponse("Salesforce refused the usage read (answers are kept for a minute): %s: %s", err.Error(), h), nil
	}
	return mintErrorResponse(err)
}

const usageHelp = `
The org's Salesforce-side usage, read with the connection's own login (deploy_username, else
verify_username; the app's run-as user for client_credentials):

- daily_api_requests: the org's DailyApiRequests from /limits (max, remaining and used =
  max - remaining). The login needs View Setup and Configuration.
- login_history: the newest 50 LoginHistory rows (login_time, status, source_ip, application,
  tls_protocol, username, user_id) of the users this connection's roles mint for, and of the
  login itself. A user sees only its own rows unless it holds Manage Users.

Answers are kept in memory for a minute (fetched_at, cached=true): reading this path never
costs more than one set of Salesforce calls (a login, two queries, /limits, a revoke) per
connection per minute, and concurrent readers share one fetch. A failed fetch is kept for the
minute too. The figures are also the metrics vault_salesforce_daily_api_requests_max and
vault_salesforce_daily_api_requests_remaining, set from the last fetch.

    vault read <mount>/connections/<name>/usage
`
