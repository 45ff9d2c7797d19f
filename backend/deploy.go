package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// deployPollInterval paces deploy status polls; Salesforce finishes a one-component deploy in
// seconds.
const deployPollInterval = 2 * time.Second

// component is the metadata component that holds the connection's certificate.
func (c *connectionEntry) component() (typ, fullName string) {
	if c.AppType == appTypeExternalClientApp {
		name := c.ECAOAuthSettingsName
		if name == "" {
			name = c.AppName + "_glbloauth"
		}
		return salesforce.TypeECAGlobalSettings, name
	}
	return salesforce.TypeConnectedApp, c.AppName
}

// metadataSession mints a token for deploy_username to call the Metadata API with. It signs
// with the active key and falls back to the pending one (Salesforce may already hold the new
// certificate); both are bound to the same origin, or the rotation would not deploy. The token
// is revoked by release once the step is done.
func (b *backend) metadataSession(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing) (*salesforce.Client, salesforce.Session, func(), error) {
	var sess salesforce.Session
	active := ring.active()
	if active == nil {
		return nil, sess, nil, errors.New("no active key")
	}
	tok, k, err := b.prove(ctx, s, name, conn, ring, active, conn.DeployUsername)
	if err != nil && salesforce.KeyRefused(err) && ring.pending() != nil {
		tok, k, err = b.prove(ctx, s, name, conn, ring, ring.pending(), conn.DeployUsername)
	}
	if err != nil {
		return nil, sess, nil, fmt.Errorf("getting a token for deploy_username %s: %w", conn.DeployUsername, err)
	}
	sess = salesforce.Session{InstanceURL: tok.InstanceURL, AccessToken: tok.AccessToken, APIVersion: conn.APIVersion, AllowNonSalesforceHost: k.origin.AllowNonSalesforceHost}
	release := func() {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.revokeQuietly(rctx, name, k.client, tok.AccessToken)
	}
	return k.client, sess, release, nil
}

// deployCertificate reads the app's current definition and deploys it back with certificate
// as its only change. It returns the deploy id.
func deployCertificate(ctx context.Context, client *salesforce.Client, sess salesforce.Session, conn *connectionEntry, certificate string) (string, error) {
	typ, fullName := conn.component()
	record, err := client.ReadMetadata(ctx, sess, typ, fullName)
	if err != nil {
		return "", fmt.Errorf("reading %s %s: %w", typ, fullName, err)
	}
	zip, err := salesforce.CertificateDeployment(typ, fullName, record, certificate, conn.APIVersion)
	if err != nil {
		return "", fmt.Errorf("building the deploy of %s %s: %w", typ, fullName, err)
	}
	return client.Deploy(ctx, sess, zip)
}

// transient reports whether a failure may pass by itself (Salesforce unreachable, 5xx, 429,
// malformed answers); refusals and configuration problems need the operator.
func transient(err error) bool {
	var ue *salesforce.UpstreamError
	return errors.As(err, &ue) && !ue.Permanent
}

// stepDeploy sends the pending certificate to the app, or polls the deploy already sent.
// A crash between the deploy and the write of its id re-deploys the same certificate on
// resume, which is harmless; the pending key's material was stored before any of it.
func (b *backend) stepDeploy(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing) error {
	st := ring.Rotation
	pending := ring.pending()
	if pending == nil {
		return b.commit(ctx, s, name, st, func(r *keyRing, now time.Time) { b.failRotation(name, r, "the pending key is gone", now) })
	}
	result, err := b.runDeploy(ctx, s, name, conn, ring, st.DeployID, pending.Certificate, &st)
	if err != nil {
		return b.deployFailed(ctx, s, name, st, err)
	}
	if result == nil { // just started, or still running
		return nil
	}
	if !result.Success {
		return b.commit(ctx, s, name, st, func(r *keyRing, now time.Time) {
			b.failRotation(name, r, fmt.Sprintf("deploying the new certificate to %s failed: %s", conn.AppName, result.Failure()), now)
		})
	}
	b.Logger().Info("new certificate deployed; verifying it", "connection", name, "pending_version", pending.Version, "deploy_id", st.DeployID)
	return b.commit(ctx, s, name, st, func(r *keyRing, now time.Time) {
		r.Rotation.State = stateVerifying
		r.Rotation.DeployedAt, r.Rotation.NextAttemptAt, r.Rotation.Attempts, r.Rotation.LastError = now, now, 0, ""
	})
}

// stepRollback deploys the previous (still active) certificate back after the new one was not
// accepted in time. It never gives up: the app must end with a certificate Vault signs for.
func (b *backend) stepRollback(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing) error {
	st := ring.Rotation
	active := ring.active()
	if active == nil {
		return errors.New("no active key to roll back to")
	}
	result, err := b.runDeploy(ctx, s, name, conn, ring, st.RollbackID, active.Certificate, &st)
	if err != nil {
		return b.retryLater(ctx, s, name, st, fmt.Errorf("rolling back to key version %d: %w", active.Version, err))
	}
	if result == nil {
		return nil
	}
	if !result.Success {
		return b.commit(ctx, s, name, st, func(r *keyRing, now time.Time) {
			r.Rotation.RollbackID, r.Rotation.Attempts = "", r.Rotation.Attempts+1
			r.Rotation.LastError = "rollback deploy failed, retrying: " + result.Failure()
			r.Rotation.NextAttemptAt = now.Add(retryBase)
		})
	}
	b.Logger().Warn("rolled back to the previous certificate", "connection", name, "active_version", active.Version)
	return b.commit(ctx, s, name, st, func(r *keyRing, now time.Time) {
		reason := r.Rotation.RollbackReason
		if p := r.pending(); p != nil {
			p.Status, p.ArchivedAt = statusArchived, now
		}
		b.failRotation(name, r, fmt.Sprintf("rolled back to key version %d: %s", active.Version, reason), now)
	})
}

// runDeploy starts a deploy of certificate when id is empty (recording the new id in the
// ring), or polls deploy id. It returns the final result once the deploy is done, nil while
// it is not.
func (b *backend) runDeploy(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing, id, certificate string, st *rotationState) (*salesforce.DeployResult, error) {
	client, sess, release, err := b.metadataSession(ctx, s, name, conn, ring)
	if err != nil {
		return nil, err
	}
	defer release()
	rollingBack := st.State == stateRollingBack
	if id == "" {
		id, err = deployCertificate(ctx, client, sess, conn, certificate)
		if err != nil {
			return nil, err
		}
		b.Logger().Info("deploy started", "connection", name, "deploy_id", id, "rollback", rollingBack)
		return nil, b.commit(ctx, s, name, *st, func(r *keyRing, now time.Time) {
			if rollingBack {
				r.Rotation.RollbackID = id
			} else {
				r.Rotation.DeployID = id
			}
			r.Rotation.LastAttemptAt, r.Rotation.NextAttemptAt = now, now.Add(deployPollInterval)
		})
	}
	res, err := client.DeployStatus(ctx, sess, id)
	if err != nil {
		return nil, err
	}
	if res.Done {
		return res, nil
	}
	return nil, b.commit(ctx, s, name, *st, func(r *keyRing, now time.Time) {
		r.Rotation.LastAttemptAt = now
		r.Rotation.NextAttemptAt = now.Add(deployPollInterval)
		if !rollingBack && now.Sub(r.Rotation.StartedAt) > conn.PropagationTimeout {
			b.failRotation(name, r, fmt.Sprintf("deploy %s still %s after propagation_timeout (%s): check Setup > Deployment Status", id, res.Status, conn.PropagationTimeout), now)
		}
	})
}

// deployFailed handles an error starting or polling the deploy of the new certificate: a
// transient one is retried with backoff, a refusal fails the rotation (the app still has the
// old certificate, so nothing is lost).
func (b *backend) deployFailed(ctx context.Context, s logical.Storage, name string, st rotationState, err error) error {
	if transient(err) {
		return b.retryLater(ctx, s, name, st, err)
	}
	return b.commit(ctx, s, name, st, func(r *keyRing, now time.Time) {
		b.failRotation(name, r, "deploying the new certificate: "+err.Error(), now)
	})
}
