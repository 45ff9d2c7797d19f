package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// The driver of consumer credential rotations (consumer_rotation_fsm.go): it loads the version
// table, performs the I/O the state calls for with a token of credentials_rotation_connection,
// feeds the outcome to the state machine and writes the result before the next side effect.
// Network calls happen without the connection lock; each outcome is applied under it, only if
// the rotation is still the one the step started from. It shares the key rotation's machinery:
// the schedule (under ccSchedKey), rotationRuns (one driver per rotation), the periodic func
// (active node only) and the retry pacing.

// ccSchedPrefix marks a consumer credential rotation in the schedule and in rotationRuns; a
// connection name cannot contain ':'.
const ccSchedPrefix = "cc:"

func ccSchedKey(name string) string { return ccSchedPrefix + name }

// maxDeletedCredVersions bounds how many deleted versions the table remembers.
const maxDeletedCredVersions = 10

func getCredRing(ctx context.Context, s logical.Storage, name string) (*credRing, error) {
	return getEntry[credRing](ctx, s, credRingPrefix+name)
}

// putCredRing writes the table and drops the connection's snapshot: the active version may have
// changed, and with it the pair reads use.
func (b *backend) putCredRing(ctx context.Context, s logical.Storage, name string, r *credRing) error {
	defer b.snaps.drop(name)
	return putJSON(ctx, s, credRingPrefix+name, r)
}

// loadCredRing is the stored table, or the implicit one of a connection that never rotated:
// version 1, active since its consumer key was written.
func loadCredRing(ctx context.Context, s logical.Storage, name string, conn *connectionEntry) (*credRing, error) {
	r, err := getCredRing(ctx, s, name)
	if err != nil || r != nil {
		return r, err
	}
	since := conn.ConsumerKeySetAt
	if since.IsZero() {
		since = conn.CreatedAt
	}
	return &credRing{Versions: []*credVersion{{Version: 1, Status: credActive, ConsumerKey: conn.ConsumerKey, CreatedAt: since, ActivatedAt: since}},
		Rotation: credentialsRotation{State: ccStateIdle}}, nil
}

// activeConsumerVersion is the version whose secret reads use: 1 until a rotation promotes another.
func activeConsumerVersion(ctx context.Context, s logical.Storage, name string) (int, error) {
	r, err := getCredRing(ctx, s, name)
	if err != nil || r == nil || r.active() == nil {
		return 1, err
	}
	return r.active().Version, nil
}

// credentialsRotationInFlight refuses a write that would change the pair under a rotation,
// naming field (consumer_secret, or consumer_key on a jwt_bearer connection).
func credentialsRotationInFlight(ctx context.Context, s logical.Storage, name, field string) (*fieldError, error) {
	r, err := getCredRing(ctx, s, name)
	if err != nil || r == nil || (!r.Rotation.inFlight() && !r.Rotation.probing()) {
		return nil, err
	}
	return fieldErr(field, "(and consumer_key, consumer_secret, login_url, audience, ca_cert, allow_non_salesforce_host) cannot change while a consumer credential rotation is in flight (state %s): let it finish, see connections/<name>/credentials/rotation", r.Rotation.State), nil
}

// startCredentialsRotation stores the intent of a rotation (a new staged version and the
// staging state) before anything is asked of Salesforce, or returns the one in flight.
func (b *backend) startCredentialsRotation(ctx context.Context, s logical.Storage, name, trigger string) (*connectionEntry, *credRing, error) {
	defer b.lockConn(name)()
	conn, err := getConnection(ctx, s, name)
	if err != nil || conn == nil {
		return nil, nil, err
	}
	if !conn.consumerRotatable() {
		return nil, nil, fieldErr("name", "is a jwt_bearer connection on a Connected App: the staged-credentials rotation applies to External Client Apps (client_credentials connections, and jwt_bearer ones with app_type=external_client_app); its keys rotate at connections/<name>/rotate")
	}
	if conn.CredentialsRotationConnection == "" {
		return nil, nil, fieldErr("credentials_rotation_connection", "is not set on the connection: name the connection whose token calls Salesforce's staged-credentials API")
	}
	ring, err := loadCredRing(ctx, s, name, conn)
	if err != nil {
		return nil, nil, err
	}
	if ring.Rotation.inFlight() || ring.Rotation.probing() {
		return conn, ring, nil
	}
	if err := consumerRotationHeldBack(ctx, s, name, conn); err != nil {
		return nil, nil, err
	}
	now := b.now().UTC()
	prev := ring.active()
	if prev == nil {
		return nil, nil, errors.New("the consumer credential table has no active version")
	}
	v := ring.nextVersion()
	ring.Versions = append(trimDeleted(ring.Versions), &credVersion{Version: v, Status: credStaged, CreatedAt: now})
	ring.Rotation = newCredentialsRotation(ring.Rotation, v, prev.Version, trigger, now)
	if err := b.putCredRing(ctx, s, name, ring); err != nil {
		return nil, nil, err
	}
	b.Logger().Info("consumer credential rotation started", "connection", name, "trigger", trigger, "version", v)
	b.noteCredentialsStarted(name, ring)
	return conn, ring, nil
}

// trimDeleted keeps the newest maxDeletedCredVersions deleted versions.
func trimDeleted(vs []*credVersion) []*credVersion {
	deleted := 0
	for _, v := range vs {
		if v.Status == credDeleted {
			deleted++
		}
	}
	out := vs[:0:0]
	for _, v := range vs {
		if v.Status == credDeleted && deleted > maxDeletedCredVersions-1 {
			deleted--
			continue
		}
		out = append(out, v)
	}
	return out
}

// driveCredentials runs rotation steps for one connection until it must wait longer than
// inlineWait, is done, or ctx ends; then it reschedules from what storage holds.
func (b *backend) driveCredentials(ctx context.Context, s logical.Storage, name string) {
	key := ccSchedKey(name)
	if !b.rotor.tryStart(key) {
		return
	}
	defer b.rotor.done(key)
	var retryAt time.Time
	defer func() { b.rescheduleCredentials(s, name, retryAt) }()
	var conn *connectionEntry
	var ring *credRing
	retryAt = b.driveSteps(ctx, "consumer credential rotation", name, func() (time.Time, error) {
		var err error
		if conn, err = getConnection(ctx, s, name); err != nil || conn == nil || !conn.consumerRotatable() {
			return time.Time{}, err
		}
		if ring, err = loadCredRing(ctx, s, name, conn); err != nil {
			return time.Time{}, err
		}
		at := nextCredentialsWork(conn, ring, b.now())
		if ring.Rotation.inFlight() || ring.Rotation.probing() {
			return at, nil
		}
		return b.holdBack(at, consumerRotationHeldBack(ctx, s, name, conn))
	}, func() (string, error) {
		err := b.credentialsStep(ctx, s, name, conn, ring)
		return ring.Rotation.State, err
	})
}

// scheduleCredentials puts the connection's consumer rotation on the schedule (or takes it off).
func (b *backend) scheduleCredentials(ctx context.Context, s logical.Storage, name string, conn *connectionEntry) error {
	if conn == nil || !conn.consumerRotatable() {
		b.metrics.credRing(name, nil, nil, b.now())
		b.sched.set(ccSchedKey(name), time.Time{})
		return nil
	}
	ring, err := loadCredRing(ctx, s, name, conn)
	if err != nil {
		return err
	}
	b.metrics.credRing(name, conn, ring, b.now())
	b.sched.set(ccSchedKey(name), nextCredentialsWork(conn, ring, b.now()))
	return nil
}

func (b *backend) rescheduleCredentials(s logical.Storage, name string, retryAt time.Time) {
	if !retryAt.IsZero() {
		b.sched.set(ccSchedKey(name), retryAt)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := getConnection(ctx, s, name)
	if err == nil {
		err = b.scheduleCredentials(ctx, s, name, conn)
	}
	if err != nil {
		b.sched.set(ccSchedKey(name), b.now().Add(retryBase))
	}
}

// credentialsStep advances an in-flight rotation by one step, or starts one that is due.
func (b *backend) credentialsStep(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *credRing) error {
	st := ring.Rotation
	if !st.inFlight() && !st.probing() {
		_, _, err := b.startCredentialsRotation(ctx, s, name, triggerScheduled)
		return err
	}
	o := b.performCredentials(ctx, s, name, conn, ring)
	p := ccParams{connection: name, overlap: conn.credentialsOverlap(), verifyTimeout: defaultVerifyTimeout}
	return b.applyCredentials(ctx, s, name, st, o, st.next(o.ccOutcome, p, b.now().UTC()))
}

// ccStepOutcome carries, beside the outcome, what the step learnt: the discovered ids and the
// staged pair's secret, which is sealed in storage before the state moves on.
type ccStepOutcome struct {
	ccOutcome
	secret            string
	appID, consumerID string
}

// performCredentials does the I/O the rotation's state calls for, and reports what it met. It
// writes nothing.
func (b *backend) performCredentials(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *credRing) ccStepOutcome {
	st := ring.Rotation
	switch st.State {
	case ccStateSwitching:
		return ccStepOutcome{}
	case ccStateVerifying, ccStateFailed:
		return ccStepOutcome{ccOutcome: b.verifyCredentials(ctx, s, name, conn, st.Version)}
	}
	api, err := b.credentialsAPI(ctx, s, conn)
	if err != nil {
		return ccStepOutcome{ccOutcome: ccFailure(err)}
	}
	defer api.close()
	out := ccStepOutcome{}
	if out.appID, out.consumerID, err = api.ids(ctx, conn, ring); err != nil {
		return ccStepOutcome{ccOutcome: ccFailure(err)}
	}
	slot, err := api.client.StagedCredentials(ctx, api.sess, out.appID, out.consumerID)
	if err != nil {
		return ccStepOutcome{ccOutcome: ccFailure(err)}
	}
	keyOf := func(v int) string {
		if cv := ring.version(v); cv != nil {
			return cv.ConsumerKey
		}
		return ""
	}
	switch st.State {
	case ccStateStaging:
		out.ccOutcome, out.secret = b.stage(ctx, api, out.appID, out.consumerID, slot)
	case ccStateRotating:
		out.ccOutcome = b.promote(ctx, api, out.appID, out.consumerID, slot, keyOf(st.Version), keyOf(st.PreviousVersion))
	case ccStateOverlap:
		out.ccOutcome = ccOutcome{kind: ccDeleted}
		if rec := findStaged(slot, keyOf(st.PreviousVersion), ""); rec != nil {
			if err := api.client.DeleteStaged(ctx, api.sess, out.appID, out.consumerID, rec.ID); err != nil {
				out.ccOutcome = ccFailure(err)
			}
		}
	}
	return out
}

// stage holds one staged pair: the one already in the slot (staged by this rotation before a
// crash lost the answer, or by a rotation that failed), else a new one. Never a second.
func (b *backend) stage(ctx context.Context, api *credentialsAPI, appID, consumerID string, slot []salesforce.StagedCredential) (ccOutcome, string) {
	if rec := findStaged(slot, "", salesforce.StagedActive); rec != nil {
		return ccOutcome{kind: ccStaged, key: rec.Key, stagedID: rec.ID}, rec.Secret
	}
	if rec := findStaged(slot, "", salesforce.StagedRotated); rec != nil {
		return ccOutcome{kind: ccSlotBusy, err: errors.New("the app's staged slot still holds the previous credentials of a rotation made outside this plugin (state Rotated): delete them in Setup (or let them expire) before rotating again")}, ""
	}
	rec, err := api.client.StageCredentials(ctx, api.sess, appID, consumerID)
	if err != nil {
		return ccFailure(err), ""
	}
	return ccOutcome{kind: ccStaged, key: rec.Key, stagedID: rec.ID}, rec.Secret
}

// promote rotates the staged pair, unless the slot shows it was rotated already (the answer to
// an earlier PATCH was lost): then it holds the previous pair, Rotated.
func (b *backend) promote(ctx context.Context, api *credentialsAPI, appID, consumerID string, slot []salesforce.StagedCredential, newKey, prevKey string) ccOutcome {
	if rec := findStaged(slot, prevKey, salesforce.StagedRotated); rec != nil && prevKey != "" {
		return ccOutcome{kind: ccRotated}
	}
	rec := findStaged(slot, newKey, salesforce.StagedActive)
	if rec == nil || newKey == "" {
		return ccOutcome{kind: ccStagedGone, err: errors.New("the staged credentials are gone or expired (deleted in Setup?); the next rotation stages new ones")}
	}
	if err := api.client.RotateStaged(ctx, api.sess, appID, consumerID, rec.ID); err != nil {
		return ccFailure(err)
	}
	return ccOutcome{kind: ccRotated}
}

// findStaged is the slot's record with key (any key when ""), in state (any when "").
func findStaged(slot []salesforce.StagedCredential, key, state string) *salesforce.StagedCredential {
	for i := range slot {
		r := &slot[i]
		if (key == "" || r.Key == key) && (state == "" || r.State == state) {
			return r
		}
	}
	return nil
}

// verifyCredentials proves version v's pair with a real token request at the connection's
// origin, the one its secret is bound to: client credentials with the pair, or (jwt_bearer) a
// JWT bearer request signed by the active key with the new consumer key as iss.
func (b *backend) verifyCredentials(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, v int) ccOutcome {
	sec, err := getEntry[consumerSecret](ctx, s, consumerSecretPath(name, v))
	if err != nil {
		return ccOutcome{kind: ccTransient, err: err}
	}
	o := originOf(conn)
	if sec == nil || sec.BoundOrigin != o.id() {
		return ccOutcome{kind: ccRefused, err: errors.New("the new consumer secret is not stored for the connection's login_url")}
	}
	var client *salesforce.Client
	var tok *salesforce.Token
	if conn.clientCredentials() {
		if client, err = b.transports.client(o, b.retry); err != nil {
			return ccOutcome{kind: ccRefused, err: err}
		}
		tok, err = client.RequestClientCredentialsToken(ctx, sec.ConsumerKey, sec.Secret)
	} else {
		tok, client, err = b.proveConsumerKey(ctx, s, name, conn, sec.ConsumerKey)
	}
	if err != nil {
		var oe *salesforce.OAuthError
		if errors.As(err, &oe) && (oe.Code == "invalid_client" || oe.Code == "invalid_client_id") {
			return ccOutcome{kind: ccPairRefused, err: err}
		}
		return ccFailure(err)
	}
	b.revokeQuietly(ctx, name, client, tok.AccessToken)
	return ccOutcome{kind: ccAccepted}
}

// ccFailure classifies a failed call: one that may pass by itself, or a refusal with what to check.
func ccFailure(err error) ccOutcome {
	if salesforce.Transient(err) {
		return ccOutcome{kind: ccTransient, err: err}
	}
	if h := salesforce.StagedCredentialsHint(err); h != "" {
		err = fmt.Errorf("%w (%s)", err, h)
	}
	return ccOutcome{kind: ccRefused, err: err}
}

// applyCredentials writes transition t under the connection lock, if the rotation is still the
// one observed as st: a staged pair's secret first (sealed), then the table and state; once
// reads have moved, the connection's consumer_key follows.
func (b *backend) applyCredentials(ctx context.Context, s logical.Storage, name string, st credentialsRotation, o ccStepOutcome, t ccTransition) error {
	defer b.lockConn(name)()
	conn, err := getConnection(ctx, s, name)
	if err != nil || conn == nil {
		return err
	}
	ring, err := loadCredRing(ctx, s, name, conn)
	if err != nil {
		return err
	}
	if ring.Rotation.StartedAt != st.StartedAt || ring.Rotation.State != st.State {
		return nil // changed under us: nothing to do
	}
	now := b.now().UTC()
	if t.change == ccRecordStaged {
		sec := &consumerSecret{ConsumerKey: o.key, Secret: o.secret, BoundOrigin: originOf(conn).id(), CreatedAt: now, FromRotation: true}
		if err := putJSON(ctx, s, consumerSecretPath(name, st.Version), sec); err != nil {
			return err
		}
	}
	if o.appID != "" && conn.ECAAppID == "" {
		ring.AppID = o.appID
	}
	if o.consumerID != "" && conn.ECAConsumerID == "" {
		ring.ConsumerID = o.consumerID
	}
	ring.applyChange(t, o.ccOutcome, now)
	ring.Rotation = t.state
	if err := b.putCredRing(ctx, s, name, ring); err != nil {
		return err
	}
	b.noteCredentialsTransition(name, st, t, ring)
	switch t.change {
	case ccActivateNew:
		if a := ring.active(); a != nil && a.ConsumerKey != "" && a.ConsumerKey != conn.ConsumerKey {
			conn.ConsumerKey, conn.ConsumerKeySetAt = a.ConsumerKey, now
			if err := b.putConnection(ctx, s, name, conn); err != nil {
				// Reads already use the new pair (its key is stored with its secret); only the
				// connection's consumer_key shows the old one until a later write.
				b.Logger().Warn("could not record the new consumer key on the connection", "connection", name, "error", err)
			}
		}
	case ccDeletePrevious:
		b.dropSecret(ctx, s, name, st.PreviousVersion)
	case ccDiscardNew:
		b.dropSecret(ctx, s, name, st.Version)
	}
	if t.log != "" {
		args := []any{"connection", name, "state", t.state.State, "version", st.Version}
		if t.warn {
			b.Logger().Warn(t.log, args...)
		} else {
			b.Logger().Info(t.log, args...)
		}
	}
	return nil
}

// dropSecret erases a version's secret that no longer authenticates (or never served).
func (b *backend) dropSecret(ctx context.Context, s logical.Storage, name string, v int) {
	if err := s.Delete(ctx, consumerSecretPath(name, v)); err != nil {
		b.Logger().Warn("could not erase a retired consumer secret", "connection", name, "version", v, "error", err)
	}
}

// credentialsAPI is one step's access to the staged-credentials API: a session of the rotating
// user, revoked when the step ends.
type credentialsAPI struct {
	b      *backend
	client *salesforce.Client
	sess   salesforce.Session

	userID   string // the logged-in user's id, the last segment of its identity URL
	username string // the logged-in user's username; for client_credentials only once a mint has read it
}

func (a *credentialsAPI) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.b.revokeQuietly(ctx, "credentials rotation", a.client, a.sess.AccessToken)
}

// credentialsAPI logs in through credentials_rotation_connection.
func (b *backend) credentialsAPI(ctx context.Context, s logical.Storage, conn *connectionEntry) (*credentialsAPI, error) {
	return b.connectionAPI(ctx, s, conn.CredentialsRotationConnection, "credentials_rotation_connection", salesforce.StagedCredentialsVersion(conn.APIVersion))
}

// connectionAPI logs in through connection rcName (named by field, for the errors): as its
// run-as user (client_credentials) or its deploy_username, else verify_username (jwt_bearer).
func (b *backend) connectionAPI(ctx context.Context, s logical.Storage, rcName, field, apiVersion string) (*credentialsAPI, error) {
	rc, err := b.snapshot(ctx, s, rcName)
	if err != nil {
		return nil, err
	}
	if rc == nil {
		return nil, fieldErr(field, "(%s) does not exist any more: create it or name another connection", rcName)
	}
	var tok *salesforce.Token
	api := &credentialsAPI{b: b}
	allowAny := rc.entry.AllowNonSalesforceHost
	if rc.entry.clientCredentials() {
		if rc.cc == nil {
			return nil, fieldErr(field, "(%s) has no consumer secret for its login_url", rcName)
		}
		api.client = rc.cc.client
		tok, err = rc.cc.client.RequestClientCredentialsToken(ctx, rc.cc.key, rc.cc.secret)
		if err == nil {
			if u, ok := b.idents.m.Load(rc.cc.originID + "\x00" + tok.ID); ok { // runAsUser's cache: no call
				api.username = u.(string)
			}
		}
	} else {
		user := rc.entry.DeployUsername
		if user == "" {
			user = rc.entry.VerifyUsername
		}
		if user == "" || rc.active == nil {
			return nil, fieldErr(field, "(%s) needs an active key and a deploy_username (or verify_username) to log in as", rcName)
		}
		api.client, allowAny, api.username = rc.active.client, rc.active.origin.AllowNonSalesforceHost, user
		tok, err = rc.requestToken(ctx, b, rc.active, user)
	}
	if err != nil {
		return nil, fmt.Errorf("logging in through %s %s: %w", field, rcName, err)
	}
	api.sess = salesforce.Session{InstanceURL: tok.InstanceURL, AccessToken: tok.AccessToken,
		APIVersion: apiVersion, AllowNonSalesforceHost: allowAny}
	api.userID = tok.ID[strings.LastIndex(tok.ID, "/")+1:]
	return api, nil
}

// ids are the app and consumer ids: set on the connection, found by an earlier discovery, or
// discovered now by the connection's active consumer key.
func (a *credentialsAPI) ids(ctx context.Context, conn *connectionEntry, ring *credRing) (string, string, error) {
	appID, consumerID := conn.ECAAppID, conn.ECAConsumerID
	if appID == "" {
		appID = ring.AppID
	}
	if consumerID == "" && (conn.ECAAppID == "" || conn.ECAAppID == ring.AppID) {
		consumerID = ring.ConsumerID
	}
	if appID != "" && consumerID != "" {
		return appID, consumerID, nil
	}
	key := conn.ConsumerKey
	if av := ring.active(); av != nil && av.ConsumerKey != "" {
		key = av.ConsumerKey
	}
	candidates := []string{appID}
	if appID == "" {
		apps, err := a.client.ExternalClientApps(ctx, a.sess)
		if err != nil {
			return "", "", err
		}
		candidates = apps
	}
	for _, id := range candidates {
		consumers, err := a.client.ECAConsumers(ctx, a.sess, id)
		if err != nil {
			var ae *salesforce.APIError
			if appID == "" && errors.As(err, &ae) && ae.Code == "INSUFFICIENT_ACCESS" && strings.Contains(strings.ToLower(ae.Message), "packaged") {
				continue // a packaged app of the org: not the one
			}
			return "", "", err
		}
		for _, c := range consumers {
			if c.Key == key {
				return id, c.ID, nil
			}
		}
	}
	return "", "", fieldErr("eca_app_id", "could not be discovered: no External Client App of the org credentials_rotation_connection logs in to has this connection's consumer key; set eca_app_id and eca_consumer_id, or check both connections point at the same org")
}
