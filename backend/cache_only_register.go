package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// Registering a cache-only key at Salesforce (protocol §11): a TenantSecret with Source REMOTE
// that names the kid, the Named Credential Salesforce calls Vault through, and the BYOK
// certificate. It is sent once. The intent, with a random Description marker, is written to
// the key's entry before the create; a registration resumed after a crash or an outage first
// looks for a record with the kid and that marker, so Salesforce never gets two.

const (
	registerUnregistered = "unregistered"
	registerPending      = "registering" // the create may or may not have reached Salesforce
	registerDone         = "registered"
)

// cacheOnlyRegistration is a key's registration at Salesforce: written before the create.
type cacheOnlyRegistration struct {
	State           string    `json:"state"`
	Marker          string    `json:"marker"` // the TenantSecret's Description: finds it after a lost answer
	Type            string    `json:"type"`   // a tenant-secrets :type (data, …)
	NamedCredential string    `json:"named_credential"`
	CertificateName string    `json:"certificate_name"`
	SalesforceID    string    `json:"salesforce_id,omitempty"`
	StartedAt       time.Time `json:"started_at"`
	RegisteredAt    time.Time `json:"registered_at,omitempty"`
}

// namedCredentialRe is a Named Credential's developer name: a letter, then letters, digits
// and single underscores, at most 80 characters.
var namedCredentialRe = regexp.MustCompile(`^[A-Za-z](?:[A-Za-z0-9]|_[A-Za-z0-9]){0,79}$`)

// remoteKeyTypes are the tenant-secret types a cache-only key can be registered for: those
// whose key Salesforce takes RSA-OAEP wrapped, the wrapping the callout's JWE uses.
func remoteKeyTypes() []string {
	var types []string
	for name, t := range tenantSecretTypes {
		if t.oaep {
			types = append(types, name)
		}
	}
	sort.Strings(types)
	return types
}

func (k *cacheOnlyKey) registrationStatus() string {
	if k.Registration == nil {
		return registerUnregistered
	}
	return k.Registration.State
}

func registrationMarker(kid string) (string, error) {
	raw := make([]byte, 8)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	return "Vault cache-only key " + kid + " registration " + hex.EncodeToString(raw), nil
}

// registrationRequest is a register call's checked input.
type registrationRequest struct {
	name, kid, typ, namedCredential, certificateName string
}

func (b *backend) pathCacheOnlyKeyRegister(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	r := registrationRequest{name: d.Get("name").(string), kid: d.Get("kid").(string), typ: d.Get("type").(string),
		namedCredential: d.Get("named_credential").(string)}
	if ferr := validKid(r.kid); ferr != nil {
		return ferr.response(), nil
	}
	if ferr := oneOf("type", r.typ, remoteKeyTypes()...); ferr != nil {
		return ferr.response(), nil
	}
	if !namedCredentialRe.MatchString(r.namedCredential) {
		return fieldErr("named_credential", "must be the developer name (API name) of the org's Named Credential that calls Vault's cache-only endpoint: a letter, then letters, digits and single underscores, at most 80 characters").response(), nil
	}
	k, err := cacheOnlyKeyOf(ctx, req.Storage, r.name, r.kid)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return logical.ErrorResponse("connection %q has no cache-only key %q: create it first", r.name, r.kid), nil
	}
	if resp := registrable(k); resp != nil {
		return resp, nil
	}
	given := d.Get("certificate_name").(string)
	r.certificateName = k.CertificateName
	switch {
	case r.certificateName == "" && given == "":
		return fieldErr("certificate_name", "is required: the key was created from a certificate PEM, so name that BYOK certificate's unique name (API name) at Salesforce").response(), nil
	case r.certificateName == "":
		r.certificateName = given
	case given != "" && given != r.certificateName:
		return fieldErr("certificate_name", "differs from the certificate the key was created for: leave it out (the key's certificate_name is used)").response(), nil
	}
	return b.registerCacheOnlyKey(ctx, req.Storage, r)
}

// registrable is the 400 of a key that cannot be registered now, or nil.
func registrable(k *cacheOnlyKey) *logical.Response {
	switch {
	case !k.DestroyedAt.IsZero():
		return logical.ErrorResponse("cache-only key %q is destroyed: register a new key", k.Kid)
	case k.registrationStatus() == registerDone:
		return logical.ErrorResponse("cache-only key %q is already registered at Salesforce as %s: a key is registered once (create a new key to register another)", k.Kid, k.Registration.SalesforceID)
	}
	return nil
}

// registerCacheOnlyKey logs in, resolves the Named Credential, records the intent, finds or
// makes the TenantSecret and records its id. No lock is held across a call to Salesforce: two
// concurrent registers of one kid share the intent and may both send the create; Salesforce
// refuses the second as a duplicate RemoteKeyIdentifier, which then finds the first's record.
func (b *backend) registerCacheOnlyKey(ctx context.Context, s logical.Storage, r registrationRequest) (*logical.Response, error) {
	api, err := b.connectionAPI(ctx, s, r.name, "connection", defaultAPIVersion)
	if err != nil {
		return registrationFailure("logging in", err)
	}
	defer api.close()
	ncID, err := api.client.NamedCredentialID(ctx, api.sess, r.namedCredential)
	if err != nil {
		return registrationFailure("finding the Named Credential", err)
	}
	if ncID == "" {
		return fieldErr("named_credential", "names no Named Credential of the org: give the developer name (API name) of the one that calls Vault's cache-only endpoint").response(), nil
	}
	reg, resp, err := b.recordRegistrationIntent(ctx, s, r)
	if resp != nil || err != nil {
		return resp, err
	}
	id := ""
	if reg.resumed {
		// An earlier attempt may have created it and lost the answer: look before creating.
		if id, err = api.client.RemoteKeyByIdentifier(ctx, api.sess, r.kid, reg.Marker); err != nil {
			return registrationFailure("looking for the interrupted registration", err)
		}
	}
	if id == "" {
		id, err = api.client.RegisterRemoteKey(ctx, api.sess, salesforce.RemoteKeyRegistration{
			Type: tenantSecretTypes[r.typ].salesforce, Source: "REMOTE", KeyDerivationMode: "NONE",
			RemoteKeyIdentifier: r.kid, RemoteKeyServiceID: ncID, RemoteKeyCertificate: r.certificateName, Description: reg.Marker})
		if salesforce.Refused(err) {
			// A concurrent register of this very intent may have made it (the refusal is then a
			// duplicate kid); otherwise Salesforce holds nothing of ours: forget the intent.
			made, lerr := api.client.RemoteKeyByIdentifier(ctx, api.sess, r.kid, reg.Marker)
			if lerr != nil || made == "" {
				if cerr := b.updateRegistration(ctx, s, r.kid, reg.Marker, func(k *cacheOnlyKey) { k.Registration = nil }); cerr != nil {
					return nil, cerr
				}
				return logical.ErrorResponse("Salesforce refused the registration: %s", describeTenantSecretError(err)), nil
			}
			id, err = made, nil
		}
		if err != nil {
			return registrationFailure("registering", err)
		}
	}
	var done *cacheOnlyKey
	err = b.updateRegistration(ctx, s, r.kid, reg.Marker, func(k *cacheOnlyKey) {
		k.Registration.State, k.Registration.SalesforceID, k.Registration.RegisteredAt = registerDone, id, b.now().UTC()
		done = k
	})
	if err != nil {
		return nil, err
	}
	b.Logger().Info("registered a cache-only key at Salesforce", "connection", r.name, "kid", r.kid, "salesforce_id", id)
	return &logical.Response{Data: registrationInfo(done)}, nil
}

// pendingRegistration is the recorded intent; resumed: an earlier attempt recorded it.
type pendingRegistration struct {
	cacheOnlyRegistration
	resumed bool
}

// recordRegistrationIntent writes the registration about to be sent, keeping the marker of
// an interrupted one so that its record is found.
func (b *backend) recordRegistrationIntent(ctx context.Context, s logical.Storage, r registrationRequest) (*pendingRegistration, *logical.Response, error) {
	defer b.lockCacheOnlyKey(r.kid)()
	k, err := cacheOnlyKeyOf(ctx, s, r.name, r.kid)
	if err != nil {
		return nil, nil, err
	}
	if k == nil {
		return nil, logical.ErrorResponse("connection %q has no cache-only key %q: create it first", r.name, r.kid), nil
	}
	if resp := registrable(k); resp != nil {
		return nil, resp, nil
	}
	p := &pendingRegistration{}
	if k.registrationStatus() == registerPending {
		p.cacheOnlyRegistration, p.resumed = *k.Registration, true
	} else {
		if p.Marker, err = registrationMarker(r.kid); err != nil {
			return nil, nil, err
		}
		p.StartedAt = b.now().UTC()
	}
	p.State, p.Type, p.NamedCredential, p.CertificateName = registerPending, r.typ, r.namedCredential, r.certificateName
	reg := p.cacheOnlyRegistration
	k.Registration = &reg
	return p, nil, putJSON(ctx, s, cacheOnlyKeyPath(r.kid), k)
}

// updateRegistration changes the key's entry, if its registration still has marker.
func (b *backend) updateRegistration(ctx context.Context, s logical.Storage, kid, marker string, change func(*cacheOnlyKey)) error {
	defer b.lockCacheOnlyKey(kid)()
	k, err := getCacheOnlyKey(ctx, s, kid)
	if err != nil {
		return err
	}
	if k == nil || k.Registration == nil || k.Registration.Marker != marker {
		return errors.New("the cache-only key's registration changed meanwhile: read the key and retry")
	}
	change(k)
	return putJSON(ctx, s, cacheOnlyKeyPath(kid), k)
}

// registrationFailure answers a failed step: 502 when Salesforce did not answer (the intent
// stays recorded and the next register resumes it), else a 400 with what to do.
func registrationFailure(step string, err error) (*logical.Response, error) {
	var ue *salesforce.UpstreamError
	if errors.As(err, &ue) {
		return nil, logical.CodedError(http.StatusBadGateway, fmt.Sprintf("%s: Salesforce did not complete the call; register again to resume (no second registration is made): %s", step, ue.Error()))
	}
	return logical.ErrorResponse("%s: %s", step, describeTenantSecretError(err)), nil
}

// registrationInfo is what reads show of a key's registration.
func registrationInfo(k *cacheOnlyKey) map[string]any {
	info := map[string]any{"kid": k.Kid, "registration_status": k.registrationStatus(), "salesforce_id": "", "registered_at": "",
		"tenant_secret_type": "", "named_credential": ""}
	if reg := k.Registration; reg != nil {
		info["salesforce_id"], info["registered_at"] = reg.SalesforceID, formatTime(reg.RegisteredAt)
		info["tenant_secret_type"], info["named_credential"] = reg.Type, reg.NamedCredential
		info["certificate_name"] = reg.CertificateName
	}
	return info
}
