package backend

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

const (
	tokenModeShared   = "shared"
	tokenModePerLease = "per_lease"

	defaultRoleTTL        = 15 * time.Minute
	defaultRoleMaxTTL     = time.Hour
	defaultSessionTimeout = 2 * time.Hour
	// Salesforce's session timeouts range from 15 minutes to 24 hours.
	minSessionTimeout = 15 * time.Minute
	maxSessionTimeout = 24 * time.Hour
)

// roleEntry is what an application may ask for: a token for one username on one connection.
type roleEntry struct {
	Connection     string        `json:"connection"`
	Username       string        `json:"username"`
	TTL            time.Duration `json:"ttl"`
	MaxTTL         time.Duration `json:"max_ttl"`
	TokenMode      string        `json:"token_mode"`
	SessionTimeout time.Duration `json:"session_timeout"`
	BoundCIDRs     []string      `json:"bound_cidrs,omitempty"`
	CreatedAt      time.Time     `json:"created_at"`
	UpdatedAt      time.Time     `json:"updated_at"`

	cidrs []netip.Prefix // parsed BoundCIDRs, filled on load
}

func defaultRole(now time.Time) *roleEntry {
	return &roleEntry{
		TTL:            defaultRoleTTL,
		MaxTTL:         defaultRoleMaxTTL,
		TokenMode:      tokenModeShared,
		SessionTimeout: defaultSessionTimeout,
		CreatedAt:      now,
	}
}

// parsePrefix accepts a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (r *roleEntry) parseCIDRs() error {
	r.cidrs = r.cidrs[:0]
	for _, c := range r.BoundCIDRs {
		p, err := parsePrefix(c)
		if err != nil {
			return err
		}
		r.cidrs = append(r.cidrs, p)
	}
	return nil
}

// allows reports whether a request may read this role's creds, by the client's address.
func (r *roleEntry) allows(req *logical.Request) bool {
	if len(r.cidrs) == 0 {
		return true
	}
	if req.Connection == nil || req.Connection.RemoteAddr == "" {
		return false
	}
	addr, err := netip.ParseAddr(req.Connection.RemoteAddr)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range r.cidrs {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Every entry type has the same helpers: getX reads storage (writers and admin reads use it,
// and change their own copy), putX writes and drops what the read path cached, and the read
// path has one cached reader per entry: cachedRole here, snapshot for connections and rings.

func getRole(ctx context.Context, s logical.Storage, name string) (*roleEntry, error) {
	r, err := getEntry[roleEntry](ctx, s, rolesPrefix+name)
	if err != nil || r == nil {
		return nil, err
	}
	if err := r.parseCIDRs(); err != nil {
		return nil, err
	}
	return r, nil
}

// putRole writes a role and drops its cached copy (after the write, failed or not: what
// storage holds is then unknown).
func (b *backend) putRole(ctx context.Context, s logical.Storage, name string, r *roleEntry) error {
	defer b.roles.drop(name)
	return putJSON(ctx, s, rolesPrefix+name, r)
}

// cachedRole is getRole through the read path's cache. The entry is shared: read it, never
// change it.
func (b *backend) cachedRole(ctx context.Context, s logical.Storage, name string) (*roleEntry, error) {
	return readThrough(b.roles, name, func() (*roleEntry, error) { return getRole(ctx, s, name) })
}
