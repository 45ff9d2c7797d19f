package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// Shield Platform Encryption BYOK (protocol §10): the BYOK certificate read through the Tooling
// API, and the TenantSecret sObject. The session's user needs Manage Encryption Keys. Wrapped
// values travel only in request and answer bodies, which no error quotes.

// TenantSecretUpload is a create body: SecretValue is the base64 of the wrapped secret.
type TenantSecretUpload struct {
	Type                   string `json:"Type"`
	SecretValue            string `json:"SecretValue"`
	SecretValueHash        string `json:"SecretValueHash"`
	SecretValueCertificate string `json:"SecretValueCertificate"`
	KeyDerivationMode      string `json:"KeyDerivationMode"`
	Source                 string `json:"Source"`
	Description            string `json:"Description,omitempty"`
}

// TenantSecret is a TenantSecret record as read.
type TenantSecret struct {
	ID          string `json:"Id"`
	Type        string `json:"Type"`
	Status      string `json:"Status"`
	Version     int    `json:"Version"`
	SecretValue string `json:"SecretValue"` // on a read: the export value restore takes back
}

// BYOKCertificatePEM reads the PEM of the BYOK certificate with unique name name: the Tooling
// query for its Id, then its CertificateChain. "" with a nil error: no such certificate.
func (c *Client) BYOKCertificatePEM(ctx context.Context, s Session, name string) (string, error) {
	var found struct {
		Records []struct {
			ID string `json:"Id"`
		} `json:"records"`
	}
	q := "SELECT Id FROM Certificate WHERE DeveloperName = '" + soqlQuote(name) + "'"
	if err := c.rest(ctx, s, "find the BYOK certificate", http.MethodGet, "tooling/query?q="+url.QueryEscape(q), nil, &found); err != nil {
		return "", err
	}
	if len(found.Records) == 0 {
		return "", nil
	}
	var raw []byte
	if err := c.rest(ctx, s, "read the BYOK certificate", http.MethodGet, "tooling/sobjects/Certificate/"+url.PathEscape(found.Records[0].ID)+"/CertificateChain", nil, &raw); err != nil {
		return "", err
	}
	var quoted string // the chain may come as a JSON string
	if json.Unmarshal(raw, &quoted) == nil {
		return quoted, nil
	}
	return string(raw), nil
}

// UploadTenantSecret creates a TenantSecret and returns its id. It is sent once: a lost answer
// is recovered by TenantSecretByHash, never by a second upload.
func (c *Client) UploadTenantSecret(ctx context.Context, s Session, up TenantSecretUpload) (string, error) {
	payload, err := json.Marshal(up)
	if err != nil {
		return "", err
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := c.rest(ctx, s, "upload the tenant secret", http.MethodPost, "sobjects/TenantSecret", payload, &created); err != nil {
		return "", err
	}
	if created.ID == "" {
		return "", &UpstreamError{Op: "upload the tenant secret", Attempts: 1, Cause: "the answer holds no id; the upload is looked up by its hash", Permanent: true}
	}
	return created.ID, nil
}

// TenantSecretByHash finds the record uploaded with hash ("" with a nil error: none).
func (c *Client) TenantSecretByHash(ctx context.Context, s Session, hash string) (string, error) {
	var found struct {
		Records []TenantSecret `json:"records"`
	}
	q := "SELECT Id, Status, Version FROM TenantSecret WHERE SecretValueHash = '" + soqlQuote(hash) + "'"
	if err := c.rest(ctx, s, "look up the tenant secret", http.MethodGet, "query?q="+url.QueryEscape(q), nil, &found); err != nil {
		return "", err
	}
	if len(found.Records) == 0 {
		return "", nil
	}
	return found.Records[0].ID, nil
}

// ReadTenantSecret reads record id, with its export value.
func (c *Client) ReadTenantSecret(ctx context.Context, s Session, id string) (*TenantSecret, error) {
	var ts TenantSecret
	err := c.rest(ctx, s, "read the tenant secret", http.MethodGet, "sobjects/TenantSecret/"+url.PathEscape(id), nil, &ts)
	return &ts, err
}

// UpdateTenantSecret patches record id with fields (Status, or SecretValue to restore).
func (c *Client) UpdateTenantSecret(ctx context.Context, s Session, id string, fields map[string]string) error {
	payload, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	return c.rest(ctx, s, "update the tenant secret", http.MethodPatch, "sobjects/TenantSecret/"+url.PathEscape(id), payload, nil)
}

// Refused reports whether Salesforce answered err as a REST refusal (not an outage).
func Refused(err error) bool {
	var ae *APIError
	return errors.As(err, &ae)
}

func soqlQuote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

// TenantSecretHint is what the operator should do after Salesforce refused a tenant-secret or
// certificate call, or "" when nothing specific is known.
func TenantSecretHint(err error) string {
	var ae *APIError
	if !errors.As(err, &ae) {
		return ""
	}
	msg := strings.ToLower(ae.Message)
	switch {
	case strings.Contains(ae.Code, "INSUFFICIENT_ACCESS"):
		return "give the connection's user (deploy_username, else verify_username) the Manage Encryption Keys permission"
	case ae.Code == "LIMIT_EXCEEDED":
		return "the type has 50 active and archived secrets: destroy an archived version (…/versions/<v>/destroy), or set auto_destroy with a lower keep_archived"
	case strings.Contains(msg, "once every") || strings.Contains(msg, "rotate"):
		return "Salesforce limits how often a secret of this type may be rotated: wait, and set rotation_period at or above the type's minimum"
	case strings.Contains(msg, "hash"):
		return "the hash Salesforce computed does not match: retry the rotation (a new secret is generated)"
	case strings.Contains(msg, "certificate") || strings.Contains(msg, "decrypt") || strings.Contains(msg, "wrap"):
		return "check certificate_name names the org's BYOK certificate (Use Platform Encryption on) and that certificate, if given, is its current PEM"
	}
	return ""
}
