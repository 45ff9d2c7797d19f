package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathRotation(b *backend) []*framework.Path {
	return []*framework.Path{
		pathSpec{pattern: entryPath("connections/", "/rotate"), verb: "rotate", suffix: "connection-key",
			fields: withName("connection", map[string]*framework.FieldSchema{
				"deploy_imported": {Type: framework.TypeBool, Default: false,
					Description: "With deploy=metadata_api and an imported pending key: deploy that key's certificate to the app. By default an imported pending key is archived and a fresh key generated, because whoever imported a key may hold a copy of it outside Vault."},
			}),
			ops:      map[logical.Operation]framework.OperationHandler{logical.UpdateOperation: changes(b.keysOnly(b.pathRotate), "Start a key rotation.")},
			synopsis: "Start rotating a connection's key.", help: rotateHelp}.path(),
		pathSpec{pattern: entryPath("connections/", "/rotation"), verb: "read", suffix: "connection-rotation", fields: withName("connection", nil),
			ops:      map[logical.Operation]framework.OperationHandler{logical.ReadOperation: plain(b.keysOnly(b.pathRotationRead), "Read the rotation state.")},
			synopsis: "Read the state of a connection's key rotation.", help: rotationHelp}.path(),
		pathSpec{pattern: entryPath("connections/", "/promote"), verb: "promote", suffix: "connection-key",
			fields: withName("connection", map[string]*framework.FieldSchema{
				"force": {Type: framework.TypeBool, Default: false,
					Description: "Promote without proving the key with a token request (for an operator who knows the certificate is in place)."},
				"version": {Type: framework.TypeInt,
					Description: "Key version to promote. Default: the pending key. An archived version may be promoted back (rolling back to its certificate, which must be on the app again)."},
			}),
			ops:      map[logical.Operation]framework.OperationHandler{logical.UpdateOperation: changes(b.keysOnly(b.pathPromote), "Promote the pending key.")},
			synopsis: "Promote a connection's pending key to active.", help: promoteHelp}.path(),
	}
}

func (b *backend) pathRotate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name := d.Get("name").(string)
	conn, ring, err := b.rotate(ctx, req.Storage, name, triggerManual, d.Get("deploy_imported").(bool))
	if err != nil {
		return errorResponse(err)
	}
	if conn == nil || ring == nil {
		return logical.ErrorResponse("connection %q does not exist", name), nil
	}
	b.Logger().Info("key rotation requested on operator request", "connection", name)
	b.scheduleConnection(name, conn, ring)
	b.driveInBackground(req.Storage, name)
	data := b.rotationData(conn, ring)
	if p := ring.pending(); p != nil {
		data["pending_certificate"] = p.Certificate
		data["pending_certificate_fingerprint_sha256"] = p.FingerprintSHA256
	}
	resp := &logical.Response{Data: data}
	if ring.Rotation.State == stateVerifying && ring.Rotation.DeployID == "" {
		resp.AddWarning("deploy=manual: upload pending_certificate to the app (Setup > App Manager > Edit > Use digital signatures); the plugin promotes the key once Salesforce accepts it")
	}
	return resp, nil
}

func (b *backend) pathRotationRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	conn, ring, err := b.loadConnection(ctx, req.Storage, d.Get("name").(string))
	if err != nil || conn == nil || ring == nil {
		return nil, err
	}
	resp := &logical.Response{Data: b.rotationData(conn, ring)}
	for _, w := range b.connectionWarnings(conn, ring) {
		resp.AddWarning(w)
	}
	return resp, nil
}

// rotationData is the rotation state as the API reports it.
func (b *backend) rotationData(conn *connectionEntry, ring *keyRing) map[string]any {
	st := ring.Rotation
	state := st.State
	if state == "" {
		state = stateIdle
	}
	return map[string]any{
		"state":                   state,
		"stalled":                 ring.stalled(),
		"trigger":                 st.Trigger,
		"pending_key_version":     pendingVersion(ring),
		"rotated_key_version":     st.PendingVersion, // the key this rotation was about, kept after it ends
		"previous_key_version":    st.PreviousVersion,
		"started_at":              formatTime(st.StartedAt),
		"last_attempt_at":         formatTime(st.LastAttemptAt),
		"next_attempt_at":         formatTime(st.NextAttemptAt),
		"attempts":                st.Attempts,
		"last_error":              st.LastError,
		"deploy_id":               st.DeployID,
		"rollback_deploy_id":      st.RollbackID,
		"deployed_at":             formatTime(st.DeployedAt),
		"last_completed_at":       formatTime(st.LastCompletedAt),
		"next_scheduled_rotation": formatTime(nextScheduled(conn, ring, b.now())),
		"next_vault_rotation":     formatTime(nextScheduled(conn, ring, b.now())),
		"last_vault_rotation":     formatTime(lastVaultRotation(ring)),
	}
}

func pendingVersion(ring *keyRing) int {
	if p := ring.pending(); p != nil {
		return p.Version
	}
	return 0
}

func (b *backend) pathPromote(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name := d.Get("name").(string)
	conn, ring, err := b.loadConnection(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if conn == nil || ring == nil {
		return logical.ErrorResponse("connection %q does not exist", name), nil
	}
	target := ring.pending()
	if ferr := wholeNumber(d, "version"); ferr != nil {
		return ferr.response(), nil
	}
	if v, ok := d.GetOk("version"); ok {
		target = ring.version(v.(int))
		switch {
		case target == nil:
			return fieldErr("version", "%d does not exist in connection %q's key ring", v.(int), name).response(), nil
		case target.Status == statusActive:
			return fieldErr("version", "%d is already active", target.Version).response(), nil
		case target.Status == statusDestroyed:
			return fieldErr("version", "%d is destroyed: its private key is gone", target.Version).response(), nil
		case target.Status == statusArchived && ring.Rotation.inFlight():
			return logical.ErrorResponse("a rotation of connection %q is in flight (state %s): let it finish or fail before promoting an archived key", name, ring.Rotation.State), nil
		case target.Status == statusArchived && !ring.boundToCurrent(target, conn):
			return fieldErr("version", "%d was made for another login_url, audience or trust setting than the connection has now, and signs only there: promote a key made for the current one", target.Version).response(), nil
		}
	}
	if target == nil {
		return logical.ErrorResponse("connection %q has no pending key: start a rotation with connections/%s/rotate, or name an archived version", name, name), nil
	}
	force := d.Get("force").(bool)
	if !force {
		username, err := b.verifyUsername(ctx, req.Storage, name, conn)
		if err != nil {
			return nil, err
		}
		if username == "" {
			return logical.ErrorResponse("cannot prove key version %d: set verify_username on the connection or create a role for it, or promote with force=true", target.Version), nil
		}
		// The proof is a network call: made without any lock held.
		probe, k, err := b.prove(ctx, req.Storage, name, conn, ring, target, username)
		if err != nil {
			resp, rerr := mintErrorResponse(err)
			if resp != nil {
				resp.Data["error"] = fmt.Sprintf("Salesforce does not accept key version %d: %s", target.Version, resp.Data["error"])
			}
			return resp, rerr
		}
		b.revokeQuietly(ctx, name, k.client, probe.AccessToken)
	}
	if err := b.promoteProven(ctx, req.Storage, name, target.Version); err != nil {
		return nil, err
	}
	how := "after proving it with a token request"
	if force {
		how = "without proof (force=true)"
	}
	b.Logger().Info("promoted key on operator request "+how, "connection", name, "key_version", target.Version)
	conn, ring, err = b.loadConnection(ctx, req.Storage, name)
	if err != nil || conn == nil || ring == nil {
		return nil, err
	}
	return &logical.Response{Data: b.rotationData(conn, ring)}, nil
}

const rotateHelp = `
Starts a key rotation: a pending key is generated (or the existing pending key reused) and its
certificate returned as pending_certificate. The call returns at once; follow progress at
connections/<name>/rotation.

deploy=metadata_api: the plugin deploys the certificate to the app through the Metadata API,
proves the new key with a real token request, then promotes it and archives the old key. If
Salesforce does not accept it within propagation_timeout, the old certificate is deployed back.

deploy=manual: upload pending_certificate to the app. The plugin probes the pending key and
promotes it once Salesforce accepts it; a creds read that the active key fails also tries it.
Reads never fail because of a rotation: the old key keeps signing until the new one is proven.
`

const rotationHelp = `
The rotation state: state (idle, deploying, verifying, promoting, rolling_back, failed),
pending_key_version (the key pending now), rotated_key_version (the key the last rotation was
about, kept after it fails), started_at, last_attempt_at, next_attempt_at, attempts, last_error,
deploy_id and next_scheduled_rotation. stalled=true marks a failed rotation that is not over:
its pending key is still probed every 10 minutes and promoted once Salesforce accepts it (a
certificate uploaded late). A failed rotation is restarted with connections/<name>/rotate,
which reuses the pending key if there is one.
`

const promoteHelp = `
Promotes the pending key to active after proving it with a token request (as verify_username,
or the first role's username). force=true promotes without proof, for an operator who knows the
certificate is registered on the app. The previous active key is archived.

version=<n> promotes an archived key back instead (rolling back to an older key): register its
certificate on the app again first; the same proof applies.
`

// nextScheduled is when the next rotation starts by itself, as the schedule will start it (a
// failure's backoff and a pending re-key included).
func nextScheduled(conn *connectionEntry, ring *keyRing, now time.Time) time.Time {
	at, _ := nextStartAt(conn, ring, now)
	return at
}
