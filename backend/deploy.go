package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// The Metadata API side of a rotation: a certificate deployed to the app, and its deploy polled.

var errNoActiveKey = errors.New("no active key to roll back to")

// driveSession is what one drive of a rotation keeps between its steps: the deploy user's
// Metadata API session, made at the first deploy step and revoked when the drive ends. Every
// step and status poll reuses it: a login per poll would fill the deploy user's Login History
// and spend its 3,600 logins an hour.
type driveSession struct {
	client  *salesforce.Client
	sess    salesforce.Session
	retryAt time.Time // set by a failed step: when the drive's connection is tried again
}

// metadataSession returns the drive's session, logging in as deploy_username when it has none:
// with the active key, falling back to the pending one (Salesforce may already hold the new
// certificate); both are bound to the same origin, or the rotation would not deploy.
func (b *backend) metadataSession(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing, d *driveSession) (*salesforce.Client, salesforce.Session, error) {
	if d.client != nil {
		return d.client, d.sess, nil
	}
	active := ring.active()
	if active == nil {
		return nil, salesforce.Session{}, errors.New("no active key")
	}
	tok, k, err := b.prove(ctx, s, name, conn, ring, active, conn.DeployUsername)
	if err != nil && salesforce.KeyRefused(err) && ring.pending() != nil {
		tok, k, err = b.prove(ctx, s, name, conn, ring, ring.pending(), conn.DeployUsername)
	}
	if err != nil {
		return nil, salesforce.Session{}, fmt.Errorf("getting a token for deploy_username %s: %w", conn.DeployUsername, err)
	}
	d.client = k.client
	d.sess = salesforce.Session{InstanceURL: tok.InstanceURL, AccessToken: tok.AccessToken, APIVersion: conn.APIVersion, AllowNonSalesforceHost: k.origin.AllowNonSalesforceHost}
	return d.client, d.sess, nil
}

// withSession runs call with the drive's session, logging in again once if Salesforce says the
// session is no longer valid (expired, or revoked by an admin).
func (b *backend) withSession(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing, d *driveSession, call func(*salesforce.Client, salesforce.Session) error) error {
	for attempt := 0; ; attempt++ {
		client, sess, err := b.metadataSession(ctx, s, name, conn, ring, d)
		if err != nil {
			return err
		}
		err = call(client, sess)
		var ae *salesforce.APIError
		if attempt == 0 && errors.As(err, &ae) && ae.Code == "INVALID_SESSION_ID" {
			d.client = nil
			continue
		}
		return err
	}
}

// endDrive revokes the drive's session: it should not outlive its purpose.
func (b *backend) endDrive(name string, d *driveSession) {
	if d.client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.revokeQuietly(ctx, name, d.client, d.sess.AccessToken)
}

// deployStep starts a deploy of certificate when id is empty, or polls deploy id, and reports
// what Salesforce said. A crash between a deploy and the write of its id re-deploys the same
// certificate on resume, which is harmless: the key's material was stored before any of it.
func (b *backend) deployStep(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing, d *driveSession, id, certificate string) outcome {
	var o outcome
	err := b.withSession(ctx, s, name, conn, ring, d, func(client *salesforce.Client, sess salesforce.Session) error {
		if id == "" {
			newID, err := deployCertificate(ctx, client, sess, conn, certificate)
			o = outcome{kind: outDeployStarted, deployID: newID}
			return err
		}
		res, err := client.DeployStatus(ctx, sess, id)
		switch {
		case err != nil:
		case !res.Done:
			o = outcome{kind: outDeployRunning, detail: res.Status}
		case res.Success:
			o = outcome{kind: outDeploySucceeded}
		default:
			o = outcome{kind: outDeployFailed, detail: res.Failure()}
		}
		return err
	})
	if err != nil {
		return failureOutcome(err)
	}
	return o
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

// failureOutcome classifies an error: a failure that may pass by itself (Salesforce
// unreachable, 5xx, 429, malformed answers) or a refusal that needs the operator.
func failureOutcome(err error) outcome {
	if salesforce.Transient(err) {
		return outcome{kind: outTransient, err: err}
	}
	return outcome{kind: outRefused, err: err}
}
