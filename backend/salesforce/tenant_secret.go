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
	id, err := c.firstID(ctx, s, "find the BYOK certificate", "tooling/query",
		"SELECT Id FROM Certificate WHERE DeveloperName = '"+soqlQuote(name)+"'")
	if err != nil || id == "" {
		return "", err
	}
	var raw []byte
	if err := c.rest(ctx, s, "read the BYOK certificate", http.MethodGet, "tooling/sobjects/Certificate/"+url.PathEscape(id)+"/CertificateChain", nil, &raw); err != nil {
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
	return c.createTenantSecret(ctx, s, "upload the tenant secret", up, "the upload is looked up by its hash")
}

// RemoteKeyRegistration is the create body of a cache-only key (protocol §11): a TenantSecret
// with Source REMOTE that names the key, the Named Credential and the BYOK certificate, and no
// key material.
type RemoteKeyRegistration struct {
	Type                 string `json:"Type"`
	Source               string `json:"Source"` // REMOTE
	KeyDerivationMode    string `json:"KeyDerivationMode"`
	RemoteKeyIdentifier  string `json:"RemoteKeyIdentifier"`
	RemoteKeyServiceID   string `json:"RemoteKeyServiceId"`
	RemoteKeyCertificate string `json:"RemoteKeyCertificate"`
	Description          string `json:"Description,omitempty"`
}

// RegisterRemoteKey creates a cache-only key's TenantSecret and returns its id. Like an upload
// it is sent once: a lost answer is recovered by RemoteKeyByIdentifier.
func (c *Client) RegisterRemoteKey(ctx context.Context, s Session, reg RemoteKeyRegistration) (string, error) {
	return c.createTenantSecret(ctx, s, "register the cache-only key", reg, "the registration is looked up by its key identifier")
}

func (c *Client) createTenantSecret(ctx context.Context, s Session, op string, body any, recovery string) (string, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := c.rest(ctx, s, op, http.MethodPost, "sobjects/TenantSecret", payload, &created); err != nil {
		return "", err
	}
	if created.ID == "" {
		return "", &UpstreamError{Op: op, Attempts: 1, Cause: "the answer holds no id; " + recovery, Permanent: true}
	}
	return created.ID, nil
}

// RemoteKeyByIdentifier finds the cache-only key registered for kid whose Description is
// description ("" with a nil error: none).
func (c *Client) RemoteKeyByIdentifier(ctx context.Context, s Session, kid, description string) (string, error) {
	var found struct {
		Records []struct {
			ID          string `json:"Id"`
			Description string `json:"Description"`
		} `json:"records"`
	}
	q := "SELECT Id, Description FROM TenantSecret WHERE RemoteKeyIdentifier = '" + soqlQuote(kid) + "'"
	if err := c.rest(ctx, s, "look up the cache-only key registration", http.MethodGet, "query?q="+url.QueryEscape(q), nil, &found); err != nil {
		return "", err
	}
	for _, r := range found.Records {
		if r.Description == description {
			return r.ID, nil
		}
	}
	return "", nil
}

// NamedCredentialID is the id of the Named Credential with developer name name ("" with a nil
// error: none).
func (c *Client) NamedCredentialID(ctx context.Context, s Session, name string) (string, error) {
	return c.firstID(ctx, s, "find the Named Credential", "query", "SELECT Id FROM NamedCredential WHERE DeveloperName = '"+soqlQuote(name)+"'")
}

// TenantSecretByHash finds the record uploaded with hash ("" with a nil error: none).
func (c *Client) TenantSecretByHash(ctx context.Context, s Session, hash string) (string, error) {
	return c.firstID(ctx, s, "look up the tenant secret", "query", "SELECT Id, Status, Version FROM TenantSecret WHERE SecretValueHash = '"+soqlQuote(hash)+"'")
}

// firstID runs SOQL q on endpoint (query or tooling/query) and returns the first record's Id
// ("" with a nil error: no record).
func (c *Client) firstID(ctx context.Context, s Session, op, endpoint, q string) (string, error) {
	var found struct {
		Records []struct {
			ID string `json:"Id"`
		} `json:"records"`
	}
	if err := c.rest(ctx, s, op, http.MethodGet, endpoint+"?q="+url.QueryEscape(q), nil, &found); err != nil {
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
	case ae.Code == "DUPLICATE_VALUE":
		return "the kid is already registered at Salesforce: destroy that key there first, or register a new cache-only key"
	case strings.Contains(msg, "named credential") || strings.Contains(msg, "remotekeyserviceid"):
		return "check named_credential is the developer name of the org's Named Credential that calls Vault's cache-only endpoint"
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
