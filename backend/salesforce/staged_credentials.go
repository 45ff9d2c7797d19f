package salesforce

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The Connect REST API that manages an External Client App's consumer key and secret (protocol
// §9, API v65.0+): find the app and its consumer, stage a new pair, promote it, delete the old
// one. Every call takes a Session of a user with External Client App Developer and View Client
// Secret, in an org whose "Allow access to External Client App consumer secrets via REST API"
// setting is on. Secrets travel only in the bodies of these answers; no error quotes a body.

// MinStagedCredentialsVersion is the first API version that has the staged-credentials resources.
const MinStagedCredentialsVersion = "65.0"

// StagedCredentialsVersion is the API version to call the staged-credentials resources with:
// the connection's own, raised to the first one that has them.
func StagedCredentialsVersion(v string) string {
	have, err1 := strconv.ParseFloat(v, 64)
	need, _ := strconv.ParseFloat(MinStagedCredentialsVersion, 64)
	if err1 != nil || have < need {
		return MinStagedCredentialsVersion
	}
	return v
}

// Staged-credentials record states.
const (
	StagedActive  = "Active"  // staged, not yet promoted
	StagedRotated = "Rotated" // the previous pair after a rotation: still valid until deleted
	StagedExpired = "Expired"
)

// StagedCredential is one record of a consumer's staged slot.
type StagedCredential struct {
	ID     string `json:"id"`
	Key    string `json:"key"`
	Secret string `json:"secret"`
	State  string `json:"state"`
}

// ECAConsumer is an External Client App's OAuth consumer.
type ECAConsumer struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

// maxUsagePages bounds the walk of apps/oauth/usage: an org has far fewer than 5,000 ECAs.
const maxUsagePages = 50

// ExternalClientApps lists the ids of the org's External Client Apps (apps/oauth/usage).
func (c *Client) ExternalClientApps(ctx context.Context, s Session) ([]string, error) {
	var ids []string
	for page := 0; page < maxUsagePages; page++ {
		var body struct {
			Apps []struct {
				Identifier string `json:"identifier"`
			} `json:"apps"`
		}
		if err := c.connect(ctx, s, "list external client apps", http.MethodGet, "apps/oauth/usage?page="+strconv.Itoa(page)+"&pageSize=100", &body); err != nil {
			return nil, err
		}
		for _, a := range body.Apps {
			ids = append(ids, a.Identifier)
		}
		if len(body.Apps) < 100 {
			break
		}
	}
	return ids, nil
}

// ECAConsumers lists an External Client App's consumers with their keys (no secrets).
func (c *Client) ECAConsumers(ctx context.Context, s Session, appID string) ([]ECAConsumer, error) {
	var body struct {
		Consumers []ECAConsumer `json:"consumers"`
	}
	err := c.connect(ctx, s, "list app consumers", http.MethodGet, "apps/oauth/credentials/"+url.PathEscape(appID), &body)
	return body.Consumers, err
}

func stagedPath(appID, consumerID string) string {
	return "apps/oauth/credentials/" + url.PathEscape(appID) + "/" + url.PathEscape(consumerID) + "/staged"
}

// StagedCredentials reads the consumer's staged slot, keys and secrets included: at most one record.
func (c *Client) StagedCredentials(ctx context.Context, s Session, appID, consumerID string) ([]StagedCredential, error) {
	var body struct {
		Staged []StagedCredential `json:"stagedCredentials"`
	}
	err := c.connect(ctx, s, "read staged credentials", http.MethodGet, stagedPath(appID, consumerID)+"?part=keyandsecret", &body)
	return body.Staged, err
}

// StageCredentials stages a new pair and returns it. It is never retried once sent: a second
// POST would be refused (one staged pair per consumer), and a lost answer is recovered by
// reading the slot.
func (c *Client) StageCredentials(ctx context.Context, s Session, appID, consumerID string) (*StagedCredential, error) {
	var body struct {
		Staged []StagedCredential `json:"stagedCredentials"`
	}
	if err := c.connect(ctx, s, "stage credentials", http.MethodPost, stagedPath(appID, consumerID), &body); err != nil {
		return nil, err
	}
	for _, sc := range body.Staged {
		if sc.State == StagedActive && sc.Key != "" && sc.Secret != "" {
			return &sc, nil
		}
	}
	return nil, &UpstreamError{Op: "stage credentials", Attempts: 1, Cause: "the answer holds no staged key and secret; the slot is read again", Permanent: true}
}

// RotateStaged promotes staged record id: its pair becomes the active one, and the previous
// pair takes its place in the slot, still valid until deleted.
func (c *Client) RotateStaged(ctx context.Context, s Session, appID, consumerID, id string) error {
	return c.connect(ctx, s, "rotate credentials", http.MethodPatch, stagedPath(appID, consumerID)+"/"+url.PathEscape(id), nil)
}

// DeleteStaged deletes staged record id: a rotated (previous) pair stops authenticating at once.
// A record already gone counts as deleted.
func (c *Client) DeleteStaged(ctx context.Context, s Session, appID, consumerID, id string) error {
	err := c.connect(ctx, s, "delete staged credentials", http.MethodDelete, stagedPath(appID, consumerID)+"/"+url.PathEscape(id), nil)
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == "NOT_FOUND" {
		return nil
	}
	return err
}

// connect makes one Connect REST call at the session's instance and decodes a JSON answer
// into out (nil: none expected). PATCH sends {"command":"rotate"}, the only command there is.
func (c *Client) connect(ctx context.Context, s Session, op, method, path string, out any) error {
	var payload []byte
	if method == http.MethodPatch {
		payload = []byte(`{"command":"rotate"}`)
	}
	return c.rest(ctx, s, op, method, path, payload, out)
}

// rest makes one REST call at the session's instance with a JSON payload (nil: none) and
// decodes a JSON answer into out (nil: none expected). A POST is never retried: it creates.
func (c *Client) rest(ctx context.Context, s Session, op, method, path string, payload []byte, out any) error {
	base, err := c.checkInstanceURL(s.InstanceURL, s.AllowNonSalesforceHost)
	if err != nil {
		return err
	}
	build := func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, method, base+"/services/data/v"+s.APIVersion+"/"+path, bytes.NewReader(payload))
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+s.AccessToken)
			if payload != nil {
				req.Header.Set("Content-Type", "application/json")
			}
		}
		return req, err
	}
	onOK := func(_ int, data []byte) error {
		if out == nil {
			return nil
		}
		if raw, ok := out.(*[]byte); ok {
			*raw = data
			return nil
		}
		if json.Unmarshal(data, out) != nil {
			return retryable(fmt.Errorf("malformed %s answer (not JSON)", op))
		}
		return nil
	}
	if method == http.MethodPost {
		cc := *c
		cc.retry.Attempts = 1 // see StageCredentials
		return cc.send(ctx, op, build, onOK)
	}
	return c.send(ctx, op, build, onOK)
}

// StagedCredentialsHint is what the operator should check after the staged-credentials API
// refused a call, or "" when nothing specific is known.
func StagedCredentialsHint(err error) string {
	var ae *APIError
	if !errors.As(err, &ae) {
		return ""
	}
	msg := strings.ToLower(ae.Message)
	switch {
	case ae.Code == "FUNCTIONALITY_NOT_ENABLED":
		return "turn on \"Allow access to External Client App consumer secrets via REST API\" in Setup > External Client App Settings"
	case ae.Code == "INSUFFICIENT_ACCESS" && strings.Contains(msg, "packaged"):
		return "the app is packaged: Salesforce rotates consumer credentials through this API only for local External Client Apps; rotate it in Setup instead"
	case ae.Code == "INSUFFICIENT_ACCESS":
		return "give the rotating user (the token of credentials_rotation_connection) the External Client App Developer and View Client Secret permissions"
	case ae.Code == "NOT_FOUND":
		return "check eca_app_id and eca_consumer_id (or clear them to discover them again), that the app is an External Client App of the org credentials_rotation_connection logs in to, and that the org is on API v65.0 or later"
	case ae.Code == "INVALID_SESSION_ID":
		return "the rotating user's session was refused: check credentials_rotation_connection"
	}
	return ""
}
