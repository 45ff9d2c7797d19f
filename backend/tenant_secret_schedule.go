package backend

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// tsSchedPrefix marks a tenant secret's entry in the schedule: "ts:<connection>/<type>".
const tsSchedPrefix = "ts:"

func tsSchedKey(conn, typ string) string { return tsSchedPrefix + conn + "/" + typ }

// nextTenantSecretWork is when the periodic func next rotates cfg: at once for a rotation cut
// short, rotation_period after the last one, never with rotation_period 0.
func nextTenantSecretWork(cfg *tenantSecretConfig, now time.Time) time.Time {
	switch {
	case cfg == nil:
		return time.Time{}
	case cfg.Pending != nil:
		return now
	case cfg.RotationPeriod <= 0:
		return time.Time{}
	case cfg.LastRotatedAt.IsZero():
		return now
	}
	return cfg.LastRotatedAt.Add(cfg.RotationPeriod)
}

func (b *backend) scheduleTenantSecret(conn, typ string, cfg *tenantSecretConfig) {
	at := nextTenantSecretWork(cfg, b.now())
	b.sched.set(tsSchedKey(conn, typ), at)
	if cfg != nil {
		b.metrics.rotationScheduled(cfg.rotationKey(), at)
	}
}

// loadTenantSecretSchedule puts every tenant secret config on the schedule (initialisation).
func (b *backend) loadTenantSecretSchedule(ctx context.Context, s logical.Storage) error {
	conns, err := s.List(ctx, tenantSecretsPrefix)
	if err != nil {
		return err
	}
	for _, c := range conns {
		conn := strings.TrimSuffix(c, "/")
		types, err := s.List(ctx, tenantSecretsPrefix+conn+"/")
		if err != nil {
			return err
		}
		for _, typ := range types {
			cfg, err := getTenantSecretConfig(ctx, s, conn, typ)
			if err != nil {
				return err
			}
			b.scheduleTenantSecret(conn, typ, cfg)
		}
	}
	return nil
}

// driveTenantSecret runs the due rotation of key ("<connection>/<type>") and schedules the next
// one; a failure is retried after retryBase.
func (b *backend) driveTenantSecret(ctx context.Context, s logical.Storage, key string) {
	conn, typ, _ := strings.Cut(key, "/")
	cfg, err := getTenantSecretConfig(ctx, s, conn, typ)
	if err == nil && cfg != nil && !nextTenantSecretWork(cfg, b.now()).After(b.now()) {
		var userErr string
		cfg, userErr, err = b.rotateTenantSecret(ctx, s, conn, typ, triggerScheduled)
		if err == nil && userErr != "" {
			b.Logger().Warn("scheduled tenant secret rotation refused", "connection", conn, "type", typ, "error", userErr)
			b.sched.set(tsSchedKey(conn, typ), b.now().Add(retryBase))
			return
		}
	}
	if err != nil {
		b.Logger().Warn("scheduled tenant secret rotation failed; retrying", "connection", conn, "type", typ, "error", err)
		b.sched.set(tsSchedKey(conn, typ), b.now().Add(retryBase))
		return
	}
	b.scheduleTenantSecret(conn, typ, cfg)
}
