package emulator

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // OAEP with SHA-1 is one of the two paddings Salesforce accepts (protocol §10)
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/big"
	"net/http"
	"strings"
	"time"
)

// Shield Platform Encryption BYOK (protocol §10): the org's BYOK certificates, whose private
// keys never leave the emulator, read through the Tooling API; and the TenantSecret sObject
// with the checks Salesforce makes on an upload. Assumptions are in ASSUMPTIONS.md.

// PermManageEncryptionKeys is the "Manage Encryption Keys" user permission.
const PermManageEncryptionKeys = "ManageEncryptionKeys"

// Tenant secret statuses, spelled as the sObject's Status picklist.
const (
	TenantSecretActive    = "Active"
	TenantSecretArchived  = "Archived"
	TenantSecretDestroyed = "Destroyed"
)

// MaxTenantSecretsPerType is the limit on active + archived secrets of one type.
const MaxTenantSecretsPerType = 50

// TenantSecretMinInterval is the minimum time between two uploads of a type (production,
// sandbox). Database is not in Salesforce's table: it is given Data's [U].
var TenantSecretMinInterval = map[string][2]time.Duration{
	"Data":              {24 * time.Hour, 4 * time.Hour},
	"DeterministicData": {7 * 24 * time.Hour, 4 * time.Hour},
	"Analytics":         {24 * time.Hour, 4 * time.Hour},
	"EventBus":          {7 * 24 * time.Hour, 7 * 24 * time.Hour},
	"SearchIndex":       {7 * 24 * time.Hour, 7 * 24 * time.Hour},
	"Database":          {24 * time.Hour, 4 * time.Hour},
}

// oaepWrappedTypes are the types whose upload is RSA-OAEP wrapped; SearchIndex and Database
// use CKM_RSA_AES_KEY_WRAP (rsa_aes_key_wrap.go).
var oaepWrappedTypes = map[string]bool{"Data": true, "DeterministicData": true, "Analytics": true, "EventBus": true}

// byokCertKeyBits is the size of the keys the emulator makes: Salesforce's BYOK certificates
// are 4096 bits, but 2048 (also a keySize the Metadata type accepts) keeps tests fast [U].
const byokCertKeyBits = 2048

type byokCert struct {
	ID, OrgID, Name, PEM string
	priv                 *rsa.PrivateKey
}

type tenantSecret struct {
	ID, OrgID, Type, Status, Source, KeyDerivationMode, Description, Hash string
	Version                                                               int
	plain                                                                 []byte
	Created, Modified                                                     time.Time
	remote                                                                remoteKey // Source REMOTE only
}

// byokState is the BYOK part of the store, guarded by Emulator.mu.
type byokState struct {
	certs     []*byokCert
	namedCred []*namedCredential
	secrets   []*tenantSecret
	versions  map[string]int // last Version per org
	exportKey []byte         // AES-256 key of the exported SecretValue
}

func (e *Emulator) byokLocked() *byokState {
	if e.byok == nil {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			panic("emulator: crypto/rand: " + err.Error())
		}
		e.byok = &byokState{versions: map[string]int{}, exportKey: key}
	}
	return e.byok
}

// AddBYOKCertificate creates a BYOK certificate named name in the org ("" = the first org) as
// Setup does, and returns its PEM. The private key stays in the emulator.
func (e *Emulator) AddBYOKCertificate(orgID, name string) (string, error) {
	priv, err := rsa.GenerateKey(rand.Reader, byokCertKeyBits)
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name, Organization: []string{"Salesforce BYOK"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(2, 0, 0), KeyUsage: x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return "", err
	}
	c := &byokCert{ID: newID("0P1"), Name: name, PEM: derToPEM(der), priv: priv}
	e.mu.Lock()
	defer e.mu.Unlock()
	c.OrgID = e.defaultOrgLocked(orgID)
	st := e.byokLocked()
	for _, old := range st.certs {
		if old.OrgID == c.OrgID && strings.EqualFold(old.Name, name) {
			return "", fmt.Errorf("emulator: certificate %q already exists", name)
		}
	}
	st.certs = append(st.certs, c)
	return c.PEM, nil
}

// TenantSecretRecord is a test's view of a TenantSecret: never the plaintext.
type TenantSecretRecord struct {
	ID, Type, Status, Source, Hash, Description string
	Version                                     int
	// A cache-only key's (Source REMOTE): its kid, certificate and Named Credential id.
	RemoteKeyIdentifier, RemoteKeyCertificate, RemoteKeyServiceID string
}

// TenantSecrets lists the org's tenant secrets in upload order.
func (e *Emulator) TenantSecrets(orgID string) []TenantSecretRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	orgID = e.defaultOrgLocked(orgID)
	var out []TenantSecretRecord
	for _, s := range e.byokLocked().secrets {
		if s.OrgID == orgID {
			out = append(out, TenantSecretRecord{ID: s.ID, Type: s.Type, Status: s.Status, Source: s.Source, Hash: s.Hash, Description: s.Description, Version: s.Version,
				RemoteKeyIdentifier: s.remote.Identifier, RemoteKeyCertificate: s.remote.Certificate, RemoteKeyServiceID: s.remote.ServiceID})
		}
	}
	return out
}

// byokCall authenticates a TenantSecret or Certificate call and checks the permission.
func (e *Emulator) byokCall(w http.ResponseWriter, r *http.Request) (authSession, bool) {
	e.count(func(c *Counters) { c.TenantSecret++ })
	if _, handled := e.injectFault(w, r, "tenant_secret", ""); handled {
		return authSession{}, false
	}
	s, ok := e.apiCall(w, r)
	if !ok {
		return s, false
	}
	if !s.user.HasPermission(PermManageEncryptionKeys) {
		writeRESTError(w, http.StatusForbidden, "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id: the user needs the Manage Encryption Keys permission")
		return s, false
	}
	return s, true
}

// handleToolingQuery answers SELECT Id, DeveloperName, MasterLabel FROM Certificate [WHERE
// DeveloperName|MasterLabel = '…'] on the Tooling API.
func (e *Emulator) handleToolingQuery(w http.ResponseWriter, r *http.Request) {
	s, ok := e.byokCall(w, r)
	if !ok {
		return
	}
	m := soqlRE.FindStringSubmatch(r.URL.Query().Get("q"))
	if m == nil || !strings.EqualFold(m[2], "Certificate") {
		writeRESTError(w, http.StatusBadRequest, "INVALID_TYPE", "the emulator's Tooling API answers only SELECT … FROM Certificate")
		return
	}
	field, value := strings.ToLower(m[3]), m[4]
	if field != "" && field != "developername" && field != "masterlabel" {
		writeRESTError(w, http.StatusBadRequest, "INVALID_FIELD", "No such column '"+m[3]+"' on entity 'Certificate'.")
		return
	}
	base := "/services/data/" + r.PathValue("ver") + "/tooling/sobjects/Certificate/"
	records := []map[string]any{}
	e.mu.Lock()
	for _, c := range e.byokLocked().certs {
		if c.OrgID == s.org.ID && (field == "" || strings.EqualFold(c.Name, value)) {
			records = append(records, map[string]any{"attributes": map[string]string{"type": "Certificate", "url": base + c.ID},
				"Id": c.ID, "DeveloperName": c.Name, "MasterLabel": c.Name})
		}
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"totalSize": len(records), "done": true, "records": records})
}

// handleCertificateChain is GET tooling/sobjects/Certificate/{id}/CertificateChain: the PEM [U:
// the body's exact shape].
func (e *Emulator) handleCertificateChain(w http.ResponseWriter, r *http.Request) {
	s, ok := e.byokCall(w, r)
	if !ok {
		return
	}
	e.mu.Lock()
	c := e.certLocked(s.org.ID, "", r.PathValue("id"))
	e.mu.Unlock()
	if c == nil {
		writeNotFound(w)
		return
	}
	writeText(w, http.StatusOK, c.PEM)
}

func (e *Emulator) certLocked(orgID, name, id string) *byokCert {
	for _, c := range e.byokLocked().certs {
		if c.OrgID == orgID && ((name != "" && strings.EqualFold(c.Name, name)) || (id != "" && sameID(c.ID, id))) {
			return c
		}
	}
	return nil
}

// tenantSecretWrite is a create or update body.
type tenantSecretWrite struct {
	Type                   *string `json:"Type"`
	SecretValue            *string `json:"SecretValue"`
	SecretValueHash        *string `json:"SecretValueHash"`
	SecretValueCertificate *string `json:"SecretValueCertificate"`
	KeyDerivationMode      *string `json:"KeyDerivationMode"`
	Source                 *string `json:"Source"`
	Status                 *string `json:"Status"`
	Description            *string `json:"Description"`
	RemoteKeyIdentifier    *string `json:"RemoteKeyIdentifier"`
	RemoteKeyServiceID     *string `json:"RemoteKeyServiceId"`
	RemoteKeyCertificate   *string `json:"RemoteKeyCertificate"`
}

func readTenantSecretWrite(w http.ResponseWriter, r *http.Request) (*tenantSecretWrite, bool) {
	var body tenantSecretWrite
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeRESTError(w, http.StatusBadRequest, "JSON_PARSER_ERROR", "The request body is not a TenantSecret: "+err.Error())
		return nil, false
	}
	return &body, true
}

func str(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

// handleTenantSecretCreate is POST sobjects/TenantSecret: unwrap, check, archive the active
// secret of the type, store.
func (e *Emulator) handleTenantSecretCreate(w http.ResponseWriter, r *http.Request) {
	s, ok := e.byokCall(w, r)
	if !ok {
		return
	}
	body, ok := readTenantSecretWrite(w, r)
	if !ok {
		return
	}
	typ := str(body.Type, "Data")
	mode := str(body.KeyDerivationMode, "PBKDF2")
	source := str(body.Source, "UPLOADED")
	if strings.EqualFold(source, "REMOTE") {
		mode = str(body.KeyDerivationMode, "NONE")
	}
	if _, known := TenantSecretMinInterval[typ]; !known {
		writeRESTError(w, http.StatusBadRequest, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Type: bad value for restricted picklist field: "+typ)
		return
	}
	if mode != "PBKDF2" && mode != "NONE" {
		writeRESTError(w, http.StatusBadRequest, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "KeyDerivationMode: bad value for restricted picklist field: "+mode)
		return
	}
	if strings.EqualFold(source, "REMOTE") && body.Status == nil {
		e.createRemoteKey(w, s, body, typ, mode)
		return
	}
	if !strings.EqualFold(source, "UPLOADED") || body.Status != nil {
		writeRESTError(w, http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", "An uploaded tenant secret takes Source UPLOADED and no Status")
		return
	}
	e.mu.Lock()
	cert := e.certLocked(s.org.ID, str(body.SecretValueCertificate, ""), "")
	e.mu.Unlock()
	if cert == nil {
		writeRESTError(w, http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", "SecretValueCertificate: no BYOK certificate with this unique name; use a certificate with Use Platform Encryption on")
		return
	}
	wrapped, err := base64.StdEncoding.DecodeString(str(body.SecretValue, ""))
	if err != nil {
		writeRESTError(w, http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", "SecretValue: not base64")
		return
	}
	unwrap, scheme := unwrapOAEP, "RSA-OAEP"
	if !oaepWrappedTypes[typ] {
		unwrap, scheme = unwrapRSAAES, "CKM_RSA_AES_KEY_WRAP: an RSA-OAEP-wrapped AES-256 key, then the secret under RFC 5649 key wrap with padding"
	}
	secret, ok := unwrap(cert.priv, wrapped)
	if !ok || len(secret) != 32 {
		writeRESTError(w, http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", "SecretValue: the tenant secret does not decrypt to 32 bytes with the certificate's private key ("+scheme+"); wrap it with this BYOK certificate")
		return
	}
	sum := sha256.Sum256(secret)
	if subtle.ConstantTimeCompare([]byte(base64.StdEncoding.EncodeToString(sum[:])), []byte(str(body.SecretValueHash, ""))) != 1 {
		writeRESTError(w, http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", "SecretValueHash: the hash does not match the tenant secret (base64 of its SHA-256)")
		return
	}
	e.addTenantSecret(w, s, &tenantSecret{Type: typ, Source: "UPLOADED", KeyDerivationMode: mode, Description: str(body.Description, ""),
		Hash: base64.StdEncoding.EncodeToString(sum[:]), plain: secret})
}

// addTenantSecret makes t the active secret of its type after the checks every new secret
// passes (the 50-per-type limit, the minimum interval), archiving the previous active one, and
// answers the create.
func (e *Emulator) addTenantSecret(w http.ResponseWriter, s authSession, t *tenantSecret) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.byokLocked()
	typ := t.Type
	kept, active := 0, (*tenantSecret)(nil)
	var last time.Time
	for _, o := range st.secrets {
		if o.OrgID != s.org.ID || o.Type != typ {
			continue
		}
		if o.Status != TenantSecretDestroyed {
			kept++
		}
		if o.Status == TenantSecretActive {
			active = o
		}
		if o.Created.After(last) {
			last = o.Created
		}
	}
	interval := TenantSecretMinInterval[typ][0]
	if s.org.Sandbox {
		interval = TenantSecretMinInterval[typ][1]
	}
	if e.cfg.TenantSecretMinInterval > 0 {
		interval = e.cfg.TenantSecretMinInterval
	}
	switch {
	case kept >= MaxTenantSecretsPerType:
		writeRESTError(w, http.StatusBadRequest, "LIMIT_EXCEEDED", fmt.Sprintf("You can have at most %d active and archived tenant secrets of type %s: destroy an archived one first", MaxTenantSecretsPerType, typ))
		return
	case !last.IsZero() && now.Sub(last) < interval:
		writeRESTError(w, http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", fmt.Sprintf("You can rotate a %s tenant secret once every %s; try again after %s", typ, interval, last.Add(interval).UTC().Format(time.RFC3339)))
		return
	}
	if t.remote.Identifier != "" {
		for _, o := range st.secrets {
			if o.OrgID == s.org.ID && o.Status != TenantSecretDestroyed && o.remote.Identifier == t.remote.Identifier {
				writeRESTError(w, http.StatusBadRequest, "DUPLICATE_VALUE", "duplicate value found: RemoteKeyIdentifier duplicates value on record with id: "+o.ID)
				return
			}
		}
	}
	if active != nil {
		active.Status, active.Modified = TenantSecretArchived, now
	}
	st.versions[s.org.ID]++
	t.ID, t.OrgID, t.Status, t.Version, t.Created, t.Modified = newID("02G"), s.org.ID, TenantSecretActive, st.versions[s.org.ID], now, now
	st.secrets = append(st.secrets, t)
	e.logf("emulator: tenant secret %s %s v%d (%s) created", t.ID, typ, t.Version, t.Source)
	writeJSON(w, http.StatusCreated, map[string]any{"id": t.ID, "success": true, "errors": []any{}})
}

// unwrapOAEP tries the two paddings Salesforce accepts: SHA-512 (MGF1 SHA-512 [U]) and SHA-1.
func unwrapOAEP(priv *rsa.PrivateKey, wrapped []byte) ([]byte, bool) {
	for _, h := range []func() hash.Hash{sha512.New, sha1.New} {
		if plain, err := rsa.DecryptOAEP(h(), nil, priv, wrapped, nil); err == nil {
			return plain, true
		}
	}
	return nil, false
}

func (e *Emulator) secretLocked(orgID, id string) *tenantSecret {
	for _, t := range e.byokLocked().secrets {
		if t.OrgID == orgID && sameID(t.ID, id) {
			return t
		}
	}
	return nil
}

// exportValue is what a read returns as SecretValue: the plaintext wrapped by the org's own
// key, so only this org can take it back (restore).
func (st *byokState) exportValue(t *tenantSecret) string {
	block, _ := aes.NewCipher(st.exportKey)
	gcm, _ := cipher.NewGCM(block)
	nonce := make([]byte, gcm.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(gcm.Seal(nonce, nonce, t.plain, []byte(t.ID)))
}

func (st *byokState) openExport(t *tenantSecret, v string) bool {
	raw, err := base64.StdEncoding.DecodeString(v)
	block, _ := aes.NewCipher(st.exportKey)
	gcm, _ := cipher.NewGCM(block)
	if err != nil || len(raw) < gcm.NonceSize() {
		return false
	}
	plain, err := gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], []byte(t.ID))
	return err == nil && subtle.ConstantTimeCompare(plain, t.plain) == 1
}

func tenantSecretRecord(base string, t *tenantSecret, secretValue any) map[string]any {
	return map[string]any{
		"attributes":             map[string]string{"type": "TenantSecret", "url": base + t.ID},
		"Id":                     t.ID,
		"Type":                   t.Type,
		"Status":                 t.Status,
		"Source":                 t.Source,
		"Version":                t.Version,
		"KeyDerivationMode":      t.KeyDerivationMode,
		"Description":            t.Description,
		"SecretValueHash":        t.Hash,
		"SecretValue":            secretValue,
		"SecretValueCertificate": nil,
		"RemoteKeyIdentifier":    nullable(t.remote.Identifier),
		"RemoteKeyServiceId":     nullable(t.remote.ServiceID),
		"RemoteKeyCertificate":   nullable(t.remote.Certificate),
		"CreatedDate":            t.Created.UTC().Format("2006-01-02T15:04:05.000+0000"),
		"LastModifiedDate":       t.Modified.UTC().Format("2006-01-02T15:04:05.000+0000"),
	}
}

// handleTenantSecret is GET and PATCH sobjects/TenantSecret/{id}. A PATCH sets Status
// (Archived → Destroyed only) or, on a destroyed secret, writes back the exported SecretValue
// (restore: it becomes Archived).
func (e *Emulator) handleTenantSecret(w http.ResponseWriter, r *http.Request) {
	s, ok := e.byokCall(w, r)
	if !ok {
		return
	}
	var body *tenantSecretWrite
	if r.Method == http.MethodPatch {
		if body, ok = readTenantSecretWrite(w, r); !ok {
			return
		}
	}
	base := "/services/data/" + r.PathValue("ver") + "/sobjects/TenantSecret/"
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.byokLocked()
	t := e.secretLocked(s.org.ID, r.PathValue("id"))
	if t == nil {
		writeNotFound(w)
		return
	}
	if body == nil {
		var export any
		if t.Status != TenantSecretDestroyed && t.remote.Identifier == "" { // a cache-only key has no value here
			export = st.exportValue(t)
		}
		writeJSON(w, http.StatusOK, tenantSecretRecord(base, t, export))
		return
	}
	if body.Type != nil || body.SecretValueHash != nil || body.KeyDerivationMode != nil || body.Source != nil || body.SecretValueCertificate != nil ||
		body.RemoteKeyIdentifier != nil || body.RemoteKeyServiceID != nil || body.RemoteKeyCertificate != nil {
		writeRESTError(w, http.StatusBadRequest, "INVALID_FIELD_FOR_INSERT_UPDATE", "Only Status, SecretValue (restore) and Description can be updated")
		return
	}
	now := e.now()
	switch {
	case body.SecretValue != nil:
		if t.remote.Identifier != "" {
			writeRESTError(w, http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", "A cache-only key has no SecretValue: its key material stays in the key service")
			return
		}
		if t.Status != TenantSecretDestroyed {
			writeRESTError(w, http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", "Only a destroyed tenant secret can be restored")
			return
		}
		if !st.openExport(t, *body.SecretValue) {
			writeRESTError(w, http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", "SecretValue: restore takes the value exported from this org for this secret, not a newly wrapped one")
			return
		}
		t.Status = TenantSecretArchived
	case body.Status != nil:
		switch {
		case *body.Status == TenantSecretDestroyed && t.Status == TenantSecretArchived:
			t.Status = TenantSecretDestroyed
		case *body.Status == t.Status:
		default:
			writeRESTError(w, http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", "Status: a tenant secret goes from Archived to Destroyed only; the active one is archived by uploading a new one")
			return
		}
	}
	if body.Description != nil {
		t.Description = *body.Description
	}
	t.Modified = now
	w.WriteHeader(http.StatusNoContent)
}

// tenantSecretRows are the org's secrets as query rows (no SecretValue: SOQL does not export).
func (e *Emulator) tenantSecretRows(orgID, base string) []map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	var rows []map[string]any
	for _, t := range e.byokLocked().secrets {
		if t.OrgID == orgID {
			rows = append(rows, tenantSecretRecord(base, t, nil))
		}
	}
	return rows
}
