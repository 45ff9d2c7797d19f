package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

const clientCredentialsGrant = "client_credentials"

// RequestClientCredentialsToken exchanges an app's consumer key and secret for an access token
// of the app's run-as user (OAuth 2.0 client credentials flow). Salesforce serves it only at the
// org's My Domain. The secret travels only in the body of this POST to the client's login host.
func (c *Client) RequestClientCredentialsToken(ctx context.Context, consumerKey, consumerSecret string) (*Token, error) {
	return c.token(ctx, url.Values{"grant_type": {clientCredentialsGrant}, "client_id": {consumerKey}, "client_secret": {consumerSecret}})
}

// Username reads tok's identity URL and returns the username it names: for the client
// credentials flow, the app's run-as user, which the token response does not say. The access
// token is sent only to an identity URL on the login host or the token's instance, over https.
func (c *Client) Username(ctx context.Context, tok *Token) (string, error) {
	idURL, err := url.Parse(tok.ID)
	if err != nil || idURL.Scheme != "https" || !c.ownHost(idURL.Host, tok.InstanceURL) {
		return "", &UpstreamError{Op: "identity", Attempts: 0, Cause: "the token's identity URL is not on the login host or the token's instance", Permanent: true}
	}
	var id struct {
		Username string `json:"username"`
	}
	err = c.send(ctx, "identity", func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, idURL.String(), nil)
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			req.Header.Set("Accept", "application/json")
		}
		return req, err
	}, func(_ int, body []byte) error {
		if err := json.Unmarshal(body, &id); err != nil || id.Username == "" {
			return retryable(errors.New("malformed identity response (no username)"))
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("reading the token's identity: %w", err)
	}
	return id.Username, nil
}

// ownHost reports whether host is the client's login host or the instance's.
func (c *Client) ownHost(host, instanceURL string) bool {
	login, err := url.Parse(c.loginURL)
	if err == nil && strings.EqualFold(login.Host, host) {
		return true
	}
	inst, err := url.Parse(instanceURL)
	return err == nil && inst.Host != "" && strings.EqualFold(inst.Host, host)
}

// IsGenericLoginHost reports whether host is login.salesforce.com or test.salesforce.com,
// which serve the JWT bearer flow but not the client credentials flow.
func IsGenericLoginHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	return h == "login.salesforce.com" || h == "test.salesforce.com"
}
