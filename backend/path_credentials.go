package backend

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The table of a connection's consumer credential versions, and their rotation through
// Salesforce's staged-credentials API (consumer_rotation_fsm.go, consumer_rotation_run.go).

func pathCredentials(b *backend) []*framework.Path {
	return []*framework.Path{
		pathSpec{pattern: entryPath("connections/", "/credentials/rotate"), verb: "rotate", suffix: "connection-credentials", fields: withName("connection", nil),
			ops:      map[logical.Operation]framework.OperationHandler{logical.UpdateOperation: changes(b.pathCredentialsRotate, "Rotate the consumer key and secret now.")},
			synopsis: "Rotate a client-credentials connection's consumer key and secret through Salesforce's staged-credentials API.", help: credentialsRotateHelp}.path(),
		pathSpec{pattern: entryPath("connections/", "/credentials/rotation"), verb: "read", suffix: "connection-credentials-rotation", fields: withName("connection", nil),
			ops:      map[logical.Operation]framework.OperationHandler{logical.ReadOperation: plain(b.pathCredentialsRotationRead, "Read the consumer credential rotation's state.")},
			synopsis: "Read the state of a connection's consumer credential rotation.", help: credentialsRotationHelp}.path(),
		pathSpec{pattern: entryPath("connections/", "/credentials"), verb: "read", suffix: "connection-credentials", fields: withName("connection", nil),
			ops:      map[logical.Operation]framework.OperationHandler{logical.ReadOperation: plain(b.pathCredentialsRead, "Read the consumer credential versions.")},
			synopsis: "Read a connection's consumer credential versions (never a secret).", help: credentialsHelp}.path(),
	}
}

func (b *backend) pathCredentialsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	conn, err := getConnection(ctx, req.Storage, name)
	if err != nil || conn == nil {
		return nil, err
	}
	if !conn.consumerRotatable() {
		v := map[string]any{"version": 1, "status": credActive, "consumer_key": conn.ConsumerKey,
			"created_at": formatTime(conn.ConsumerKeySetAt), "activated_at": formatTime(conn.ConsumerKeySetAt), "deleted_at": "", "has_secret": false}
		return &logical.Response{Data: map[string]any{"auth_flow": conn.flow(), "active_version": 1, "versions": []map[string]any{v}}}, nil
	}
	ring, err := getCredRing(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if ring == nil { // never rotated: version 1, dated by its stored secret
		if ring, err = loadCredRing(ctx, req.Storage, name, conn); err != nil {
			return nil, err
		}
		if sec, err := getConsumerSecret(ctx, req.Storage, name); err != nil {
			return nil, err
		} else if sec != nil {
			ring.Versions[0].CreatedAt, ring.Versions[0].ActivatedAt = sec.CreatedAt, sec.CreatedAt
		}
	}
	// Which versions Vault holds a secret for, from the names under secrets/ only.
	held, err := req.Storage.List(ctx, secretsPrefix+name+"/consumer/")
	if err != nil {
		return nil, err
	}
	has := map[string]bool{}
	for _, h := range held {
		has[h] = true
	}
	versions := []map[string]any{}
	active := 0
	for _, v := range ring.Versions {
		if v.Status == credActive {
			active = v.Version
		}
		versions = append(versions, map[string]any{"version": v.Version, "status": v.Status, "consumer_key": v.ConsumerKey,
			"created_at": formatTime(v.CreatedAt), "activated_at": formatTime(v.ActivatedAt), "deleted_at": formatTime(v.DeletedAt),
			"has_secret": has[strconv.Itoa(v.Version)]})
	}
	return &logical.Response{Data: map[string]any{"auth_flow": conn.flow(), "active_version": active, "versions": versions}}, nil
}

// pathCredentialsRotate starts a rotation (or joins the one in flight) and drives it as far as
// it goes without waiting: a refusal at Salesforce (permissions, org setting, packaged app, ids)
// comes back here as a 400 saying what to check, an outage as a 502; the overlap and the
// deletion of the previous pair follow from the periodic func.
func (b *backend) pathCredentialsRotate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name := d.Get("name").(string)
	conn, _, err := b.startCredentialsRotation(ctx, req.Storage, name, triggerManual)
	if err != nil {
		return errorResponse(err)
	}
	if conn == nil {
		return logical.ErrorResponse("connection %q does not exist", name), nil
	}
	b.Logger().Info("consumer credential rotation requested on operator request", "connection", name)
	dctx, cancel := context.WithTimeout(ctx, driveBudget)
	defer cancel()
	b.driveCredentials(dctx, req.Storage, name)
	conn, err = getConnection(ctx, req.Storage, name)
	if err != nil || conn == nil {
		return nil, err
	}
	ring, err := loadCredRing(ctx, req.Storage, name, conn)
	if err != nil {
		return nil, err
	}
	st := ring.Rotation
	switch {
	case st.State == ccStateFailed:
		return logical.ErrorResponse("the consumer credential rotation of connection %q failed: %s", name, st.LastError), nil
	case st.LastError != "" && st.Attempts > 0:
		return nil, logical.CodedError(http.StatusBadGateway, fmt.Sprintf("the consumer credential rotation of connection %q is retried by the periodic func after: %s", name, st.LastError))
	}
	return &logical.Response{Data: b.credentialsRotationData(conn, ring)}, nil
}

func (b *backend) pathCredentialsRotationRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	conn, err := getConnection(ctx, req.Storage, name)
	if err != nil || conn == nil {
		return nil, err
	}
	if !conn.consumerRotatable() {
		return logical.ErrorResponse("connection %q is a jwt_bearer connection on a Connected App: its keys rotate at connections/%s/rotation; the staged-credentials rotation applies to External Client Apps (client_credentials connections, and jwt_bearer ones with app_type=external_client_app)", name, name), nil
	}
	ring, err := loadCredRing(ctx, req.Storage, name, conn)
	if err != nil {
		return nil, err
	}
	resp := &logical.Response{Data: b.credentialsRotationData(conn, ring)}
	if ring.Rotation.State == ccStateFailed {
		resp.AddWarning("the last consumer credential rotation failed: " + ring.Rotation.LastError)
	}
	return resp, nil
}

// credentialsRotationData is the rotation state as the API reports it.
func (b *backend) credentialsRotationData(conn *connectionEntry, ring *credRing) map[string]any {
	st := ring.Rotation
	state := st.State
	if state == "" {
		state = ccStateIdle
	}
	appID, consumerID := conn.ECAAppID, conn.ECAConsumerID
	if appID == "" {
		appID = ring.AppID
	}
	if consumerID == "" {
		consumerID = ring.ConsumerID
	}
	next := nextScheduledCredentialsRotation(conn, ring, b.now())
	if st.inFlight() || st.probing() {
		next = nextCredentialsWork(conn, ring, b.now()) // the next step of this one
	}
	return map[string]any{
		"state":                   state,
		"trigger":                 st.Trigger,
		"version":                 st.Version,
		"previous_version":        st.PreviousVersion,
		"failed_in":               st.FailedIn,
		"started_at":              formatTime(st.StartedAt),
		"rotated_at":              formatTime(st.RotatedAt),
		"delete_previous_at":      formatTime(st.DeleteAt),
		"last_attempt_at":         formatTime(st.LastAttemptAt),
		"next_attempt_at":         formatTime(st.NextAttemptAt),
		"attempts":                st.Attempts,
		"last_error":              st.LastError,
		"last_completed_at":       formatTime(st.LastCompletedAt),
		"next_scheduled_rotation": formatTime(next),
		"eca_app_id":              appID,
		"eca_consumer_id":         consumerID,
	}
}

var credentialsHelp = strings.TrimSpace(`
The consumer credential versions of a connection: version, status (staged, active, previous,
deleted), consumer_key, created_at, activated_at, deleted_at, and has_secret (whether Vault
holds the version's consumer secret, sealed). The secret itself is never returned. A
client_credentials connection, or a jwt_bearer one with app_type=external_client_app, gains
versions as connections/<name>/credentials/rotate (or its schedule) rotates them through
Salesforce's staged-credentials API; a jwt_bearer connection on a Connected App shows its one
consumer key.
`)

var credentialsRotateHelp = strings.TrimSpace(`
Rotates a client_credentials connection's consumer key and secret now, through Salesforce's
staged-credentials API, authenticated by credentials_rotation_connection: stage a new pair
(sealed in Vault before it is used), promote it at Salesforce, prove it with a token request,
move reads to it, keep the previous pair valid for credentials_overlap, then delete it. On a
jwt_bearer connection with app_type=external_client_app the same steps rotate the consumer key
(the JWT iss; the certificate and keys stay): the proof is a JWT bearer request signed by the
active key with the new key as iss, and it does not start while a key rotation is in flight. Reads
never fail during a rotation. The answer is the rotation state once every step that needs no
waiting is done; a refusal (missing permission, org setting off, packaged app, unknown ids) is
a 400 saying what to check. A rotation in flight is joined, not restarted.
`)

var credentialsRotationHelp = strings.TrimSpace(`
The state of the connection's consumer credential rotation: state (idle, staging, rotating,
verifying, switching, overlap, failed), started_at, last_error, next_scheduled_rotation, the
version being rotated to, when the previous pair is deleted (delete_previous_at), and the
External Client App and consumer ids in use (given, or discovered by consumer key).
`)
