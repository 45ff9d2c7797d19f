package backend

import (
	"context"
	"regexp"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The settings of a connection's consumer key/secret rotation (client credentials, or the
// consumer key of a jwt_bearer connection on an External Client App, consumer_jwt.go) through
// Salesforce's staged-credentials API (docs/rotation.md). The schedule has the key rotation's
// shape (a period, or a cron schedule with a window) under names of its own, so that one
// connection's two rotations never share a field.

const (
	defaultCredentialsOverlap = time.Hour
	minCredentialsOverlap     = time.Minute
	// maxCredentialsOverlap stays below Salesforce's 30 days, after which it expires the previous
	// pair by itself: the plugin must delete it while it still knows it is there.
	maxCredentialsOverlap = 29 * 24 * time.Hour
)

// salesforceIDRe is a record id, 15 or 18 characters.
var salesforceIDRe = regexp.MustCompile(`^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$`)

// credentialsRotationFields are the connection fields of the consumer credential rotation.
func credentialsRotationFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"credentials_rotation_connection": {Type: framework.TypeLowerCaseString,
			Description: "auth_flow=client_credentials, or jwt_bearer with app_type=external_client_app (the consumer key rotates, the certificate stays): another connection of this mount whose token calls Salesforce's staged-credentials API to rotate this connection's consumer key and secret (never the connection itself: rotating the secret a call authenticates with would cut it off). A client_credentials connection acts as its app's run-as user; a jwt_bearer one as its deploy_username (else verify_username). That user needs External Client App Developer and View Client Secret, and the org the setting \"Allow access to External Client App consumer secrets via REST API\". \"\" turns the rotation off."},
		"eca_app_id": {Type: framework.TypeString,
			Description: "The External Client App's id (0xI…). Default: discovered from apps/oauth/usage by the connection's consumer key at the first rotation, and shown at connections/<name>/credentials/rotation."},
		"eca_consumer_id": {Type: framework.TypeString,
			Description: "The app's OAuth consumer id (888…). Default: discovered from apps/oauth/credentials/<app id> by the consumer key."},
		"credentials_rotation_period": {Type: framework.TypeDurationSecond, Default: 0,
			Description: "Rotate the consumer key and secret when the active pair is this old (0: off). Mutually exclusive with credentials_rotation_schedule."},
		"credentials_rotation_schedule": {Type: framework.TypeString,
			Description: "Cron schedule (minute hour day-of-month month day-of-week, UTC) of consumer credential rotations, e.g. \"0 3 * * SUN\"; \"\" turns it off. Mutually exclusive with credentials_rotation_period."},
		"credentials_rotation_window": {Type: framework.TypeDurationSecond, Default: 0,
			Description: "With credentials_rotation_schedule: how long after each scheduled time a rotation may still start (at least 1h; 0: any time after it)."},
		"credentials_overlap": {Type: framework.TypeDurationSecond, Default: int(defaultCredentialsOverlap.Seconds()),
			Description: "How long the previous consumer key and secret stay valid at Salesforce after reads moved to the new pair, before the plugin deletes them (between 1m and 696h: below Salesforce's 30 days)."},
	}
}

// credentialsRotationFieldNames lists them, for the checks that refuse them on Connected App connections.
var credentialsRotationFieldNames = []string{"credentials_rotation_connection", "eca_app_id", "eca_consumer_id",
	"credentials_rotation_period", "credentials_rotation_schedule", "credentials_rotation_window", "credentials_overlap"}

// applyCredentialsRotationFields reads the fields into c and checks them together.
func applyCredentialsRotationFields(c *connectionEntry, d *framework.FieldData) *fieldError {
	if !c.consumerRotatable() {
		for _, f := range credentialsRotationFieldNames {
			if _, ok := d.GetOk(f); ok {
				return fieldErr(f, "applies to client_credentials connections and to jwt_bearer connections with app_type=external_client_app: Salesforce's staged-credentials API rotates the consumer keys of External Client Apps only (a Connected App's is regenerated in Setup)")
			}
		}
		if c.CredentialsRotationConnection != "" {
			return fieldErr("app_type", "cannot be connected_app while credentials_rotation_connection is set: the staged-credentials API rotates External Client Apps only; write credentials_rotation_connection=\"\" first")
		}
		return nil
	}
	if v, ok := d.GetOk("credentials_rotation_connection"); ok {
		c.CredentialsRotationConnection = v.(string)
	}
	for _, f := range []struct {
		field string
		dst   *string
	}{{"eca_app_id", &c.ECAAppID}, {"eca_consumer_id", &c.ECAConsumerID}} {
		v, ok := d.GetOk(f.field)
		if !ok {
			continue
		}
		if id := v.(string); id != "" && !salesforceIDRe.MatchString(id) {
			return fieldErr(f.field, "is not a Salesforce id: give the 15- or 18-character id (an app's starts 0xI, a consumer's 888), or \"\" to discover it")
		}
		*f.dst = v.(string)
	}
	if v, set, ferr := durationField(d, "credentials_rotation_period", minKeyRotationPeriod, maxCertificateTTL, true); ferr != nil {
		return ferr
	} else if set {
		c.CredentialsRotationPeriod = v
	}
	if ferr := cronField(d, "credentials_rotation_schedule", &c.CredentialsRotationSchedule); ferr != nil {
		return ferr
	}
	if ferr := windowField(d, "credentials_rotation_window", &c.CredentialsRotationWindow); ferr != nil {
		return ferr
	}
	if v, set, ferr := durationField(d, "credentials_overlap", minCredentialsOverlap, maxCredentialsOverlap, false); ferr != nil {
		return ferr
	} else if set {
		c.CredentialsOverlap = v
	}
	switch {
	case c.CredentialsRotationSchedule != "" && c.CredentialsRotationPeriod > 0:
		return fieldErr("credentials_rotation_schedule", "and credentials_rotation_period are mutually exclusive: set the other to 0 or \"\"")
	case c.CredentialsRotationWindow > 0 && c.CredentialsRotationSchedule == "":
		return fieldErr("credentials_rotation_window", "applies to credentials_rotation_schedule only: set a schedule, or the window to 0")
	case c.CredentialsRotationConnection == "" && (c.CredentialsRotationPeriod > 0 || c.CredentialsRotationSchedule != ""):
		return fieldErr("credentials_rotation_connection", "is required to rotate the consumer credentials on a schedule: name the connection whose token calls the staged-credentials API")
	}
	return nil
}

// checkCredentialsRotationConnection checks the rotating connection against storage: another
// connection of this mount, and one that can name the user its token acts for.
func checkCredentialsRotationConnection(ctx context.Context, s logical.Storage, name string, c *connectionEntry) (*fieldError, error) {
	rc := c.CredentialsRotationConnection
	if rc == "" {
		return nil, nil
	}
	if rc == name {
		return fieldErr("credentials_rotation_connection", "cannot be the connection itself: the rotation calls would authenticate with the very secret they replace, and be cut off by it; name another connection (for instance a jwt_bearer one for an admin user)"), nil
	}
	other, err := getConnection(ctx, s, rc)
	if err != nil {
		return nil, err
	}
	switch {
	case other == nil:
		return fieldErr("credentials_rotation_connection", "names no connection of this mount: create it first"), nil
	case !other.clientCredentials() && other.DeployUsername == "" && other.VerifyUsername == "":
		return fieldErr("credentials_rotation_connection", "is a jwt_bearer connection with no deploy_username or verify_username: set one on it, a user with External Client App Developer and View Client Secret"), nil
	case other.CredentialsRotationConnection == name:
		return fieldErr("credentials_rotation_connection", "is rotated by this connection: two connections cannot rotate each other, or one rotation could cut off the other's calls"), nil
	case other.ConsumerKey == c.ConsumerKey:
		return fieldErr("credentials_rotation_connection", "uses the same consumer key as this connection: the rotation replaces that key and then deletes it, which would cut off the rotating connection's own logins; name a connection of another app"), nil
	}
	return nil, nil
}

// credentialsOverlap is the overlap in effect.
func (c *connectionEntry) credentialsOverlap() time.Duration {
	if c.CredentialsOverlap == 0 {
		return defaultCredentialsOverlap
	}
	return c.CredentialsOverlap
}

// credentialsRotationEnabled reports whether the schedule rotates the consumer pair by itself.
func (c *connectionEntry) credentialsRotationEnabled() bool {
	return c.consumerRotatable() && c.CredentialsRotationConnection != "" &&
		(c.CredentialsRotationPeriod > 0 || c.CredentialsRotationSchedule != "")
}

// credentialsRotationData is the settings as a connection read shows them.
func credentialsRotationData(c *connectionEntry) map[string]any {
	return map[string]any{
		"credentials_rotation_connection": c.CredentialsRotationConnection,
		"eca_app_id":                      c.ECAAppID,
		"eca_consumer_id":                 c.ECAConsumerID,
		"credentials_rotation_period":     int64(c.CredentialsRotationPeriod.Seconds()),
		"credentials_rotation_schedule":   c.CredentialsRotationSchedule,
		"credentials_rotation_window":     int64(c.CredentialsRotationWindow.Seconds()),
		"credentials_overlap":             int64(c.credentialsOverlap().Seconds()),
	}
}
