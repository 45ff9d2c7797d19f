package emulator

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// Cache-only keys as Salesforce records them (protocol §11): a TenantSecret with Source REMOTE
// that names the key service's key id (RemoteKeyIdentifier), the Named Credential Salesforce
// calls it through (RemoteKeyServiceId) and the BYOK certificate the key comes wrapped for
// (RemoteKeyCertificate). No key material is sent. Assumptions are in ASSUMPTIONS.md.

// remoteKey is the Source REMOTE part of a TenantSecret.
type remoteKey struct {
	Identifier, ServiceID, Certificate string
}

// namedCredential is a Named Credential of an org: the id RemoteKeyServiceId takes.
type namedCredential struct {
	ID, OrgID, Name, Endpoint string
}

// remoteKeyIDRe is what the emulator accepts as a RemoteKeyIdentifier [U: Salesforce documents
// no charset; the key id travels in the callout URL, so URL-safe characters only].
var remoteKeyIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// AddNamedCredential creates a Named Credential named name ("" org = the first org) pointing at
// endpoint, as Setup does, and returns its id.
func (e *Emulator) AddNamedCredential(orgID, name, endpoint string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	orgID = e.defaultOrgLocked(orgID)
	st := e.byokLocked()
	for _, nc := range st.namedCred {
		if nc.OrgID == orgID && strings.EqualFold(nc.Name, name) {
			return "", fmt.Errorf("emulator: named credential %q already exists", name)
		}
	}
	nc := &namedCredential{ID: newID("0XA"), OrgID: orgID, Name: name, Endpoint: endpoint}
	st.namedCred = append(st.namedCred, nc)
	return nc.ID, nil
}

// namedCredentialRows are the org's Named Credentials as query rows.
func (e *Emulator) namedCredentialRows(orgID, base string) []map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	var rows []map[string]any
	for _, nc := range e.byokLocked().namedCred {
		if nc.OrgID == orgID {
			rows = append(rows, namedCredentialRecord(base, nc))
		}
	}
	return rows
}

func namedCredentialRecord(base string, nc *namedCredential) map[string]any {
	return map[string]any{"attributes": map[string]string{"type": "NamedCredential", "url": base + nc.ID},
		"Id": nc.ID, "DeveloperName": nc.Name, "MasterLabel": nc.Name, "Endpoint": nc.Endpoint}
}

// createRemoteKey is POST sobjects/TenantSecret with Source REMOTE: the checks of a cache-only
// key's registration, then the checks every new secret of the type passes.
func (e *Emulator) createRemoteKey(w http.ResponseWriter, s authSession, body *tenantSecretWrite, typ, mode string) {
	var missing []string
	for _, f := range []struct {
		name string
		v    *string
	}{{"RemoteKeyIdentifier", body.RemoteKeyIdentifier}, {"RemoteKeyServiceId", body.RemoteKeyServiceID}, {"RemoteKeyCertificate", body.RemoteKeyCertificate}} {
		if str(f.v, "") == "" {
			missing = append(missing, f.name)
		}
	}
	switch {
	case len(missing) > 0:
		writeRESTError(w, http.StatusBadRequest, "REQUIRED_FIELD_MISSING", "Required fields are missing: ["+strings.Join(missing, ", ")+"]")
		return
	case body.SecretValue != nil || body.SecretValueHash != nil || body.SecretValueCertificate != nil:
		writeRESTError(w, http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", "A cache-only key (Source REMOTE) takes no SecretValue, SecretValueHash or SecretValueCertificate: its key material stays in the key service")
		return
	case mode != "NONE":
		writeRESTError(w, http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", "KeyDerivationMode: a cache-only key is used as the data key directly; use NONE")
		return
	case !oaepWrappedTypes[typ]:
		writeRESTError(w, http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", "Type: cache-only keys are not available for "+typ+" secrets")
		return
	case !remoteKeyIDRe.MatchString(*body.RemoteKeyIdentifier):
		writeRESTError(w, http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", "RemoteKeyIdentifier: use 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'")
		return
	}
	e.mu.Lock()
	cert := e.certLocked(s.org.ID, *body.RemoteKeyCertificate, "")
	var nc *namedCredential
	for _, c := range e.byokLocked().namedCred {
		if c.OrgID == s.org.ID && sameID(c.ID, *body.RemoteKeyServiceID) {
			nc = c
		}
	}
	e.mu.Unlock()
	if cert == nil {
		writeRESTError(w, http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", "RemoteKeyCertificate: no BYOK certificate with this unique name; use a certificate with Use Platform Encryption on")
		return
	}
	if nc == nil {
		writeRESTError(w, http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", "RemoteKeyServiceId: id value of incorrect type or no such Named Credential: give the Id of the Named Credential that calls the key service")
		return
	}
	e.addTenantSecret(w, s, &tenantSecret{Type: typ, Source: "REMOTE", KeyDerivationMode: mode, Description: str(body.Description, ""),
		remote: remoteKey{Identifier: *body.RemoteKeyIdentifier, ServiceID: nc.ID, Certificate: cert.Name}})
}

func nullable(v string) any {
	if v == "" {
		return nil
	}
	return v
}
