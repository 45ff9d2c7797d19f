package backend

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/keyutil"
)

func pathKeys(b *backend) []*framework.Path {
	return []*framework.Path{
		pathSpec{pattern: entryPath("connections/", "/certificate"), verb: "read", suffix: "connection-certificate", fields: withName("connection", nil),
			ops:      map[logical.Operation]framework.OperationHandler{logical.ReadOperation: plain(b.keysOnly(b.pathCertificateRead), "Read the certificates to register on the app.")},
			synopsis: "Read the active (and pending) certificate of a connection.", help: certificateHelp}.path(),
		pathSpec{pattern: entryPath("connections/", "/keys/?$"), suffix: "connection-keys", fields: withName("connection", nil),
			ops:      map[logical.Operation]framework.OperationHandler{logical.ListOperation: plain(b.keysOnly(b.pathKeysList), "List the key versions with their status.")},
			synopsis: "List a connection's key versions.", help: keysHelp}.path(),
		pathSpec{pattern: entryPath("connections/", "/keys/(?P<version>[0-9]+)"), suffix: "connection-key",
			fields: withName("connection", map[string]*framework.FieldSchema{"version": {Type: framework.TypeInt, Description: "Key version."}}),
			ops: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation:   plain(b.keysOnly(b.pathKeyRead), "Read a key version's metadata and certificate."),
				logical.DeleteOperation: changes(b.keysOnly(b.pathKeyDelete), "Destroy an archived key version."),
			},
			synopsis: "Read a key version, or destroy an archived one.", help: keyHelp}.path(),
		pathSpec{pattern: entryPath("connections/", "/import"), verb: "import", suffix: "connection-key", fields: withName("connection", importFields()),
			ops:      map[logical.Operation]framework.OperationHandler{logical.UpdateOperation: changes(b.keysOnly(b.pathImport), "Import an existing key into the ring.")},
			synopsis: "Import an existing private key into a connection's ring.", help: importHelp}.path(),
	}
}

func importFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"private_key": {Type: framework.TypeString, Required: true, DisplayAttrs: &framework.DisplayAttributes{Sensitive: true, EditType: "textarea"},
			Description: "PEM RSA private key (PKCS#1 or PKCS#8, >= 2048 bits). Write-only: never returned."},
		"certificate": {Type: framework.TypeString, DisplayAttrs: &framework.DisplayAttributes{EditType: "textarea"},
			Description: "The key's PEM certificate, as registered on the app (must match the key). Generated when absent."},
		"activate": {Type: framework.TypeBool, Default: false,
			Description: "true: the key becomes active at once (the previous active key is archived). false: it becomes the pending key, promoted once Salesforce accepts it."},
	}
}

func (b *backend) pathCertificateRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	ring, err := getKeyRing(ctx, req.Storage, d.Get("name").(string))
	if err != nil || ring == nil {
		return nil, err
	}
	data := map[string]any{}
	if a := ring.active(); a != nil {
		data["certificate"] = a.Certificate
		data["certificate_fingerprint_sha256"] = a.FingerprintSHA256
		data["certificate_not_after"] = formatTime(a.NotAfter)
		data["key_version"] = a.Version
	}
	if p := ring.pending(); p != nil {
		data["pending_certificate"] = p.Certificate
		data["pending_certificate_fingerprint_sha256"] = p.FingerprintSHA256
		data["pending_certificate_not_after"] = formatTime(p.NotAfter)
		data["pending_key_version"] = p.Version
	}
	return &logical.Response{Data: data}, nil
}

func keyInfo(v *keyVersion) map[string]any {
	return map[string]any{
		"status":             v.Status,
		"fingerprint_sha256": v.FingerprintSHA256,
		"key_type":           v.KeyType,
		"created_at":         formatTime(v.CreatedAt),
		"activated_at":       formatTime(v.ActivatedAt),
		"archived_at":        formatTime(v.ArchivedAt),
		"destroyed_at":       formatTime(v.DestroyedAt),
		"not_after":          formatTime(v.NotAfter),
		"origin":             v.Origin,
	}
}

func (b *backend) pathKeysList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	ring, err := getKeyRing(ctx, req.Storage, d.Get("name").(string))
	if err != nil || ring == nil {
		return nil, err
	}
	versions := append([]*keyVersion(nil), ring.Versions...)
	sort.Slice(versions, func(i, j int) bool { return versions[i].Version < versions[j].Version })
	keys := make([]string, 0, len(versions))
	info := make(map[string]any, len(versions))
	for _, v := range versions {
		k := strconv.Itoa(v.Version)
		keys = append(keys, k)
		info[k] = keyInfo(v)
	}
	return logical.ListResponseWithInfo(keys, info), nil
}

func (b *backend) pathKeyRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	ring, err := getKeyRing(ctx, req.Storage, name)
	if err != nil || ring == nil {
		return nil, err
	}
	v := ring.version(d.Get("version").(int))
	if v == nil {
		return nil, nil
	}
	data := keyInfo(v)
	data["version"] = v.Version
	if v.Status != statusDestroyed {
		data["certificate"] = v.Certificate
	}
	roles, err := b.rolesUsing(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	// Every role of the connection signs with the active key (and would with a pending one the
	// moment it is promoted); archived and destroyed versions sign nothing.
	used := []string{}
	if v.Status == statusActive || v.Status == statusPending {
		used = append(used, roles...)
	}
	data["used_by_roles"] = used
	return &logical.Response{Data: data}, nil
}

// pathKeyDelete destroys an archived version: its private key is erased, its metadata stays.
func (b *backend) pathKeyDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	version := d.Get("version").(int)
	defer b.lockConn(name)()
	ring, err := getKeyRing(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if ring == nil {
		return logical.ErrorResponse("connection %q does not exist", name), nil
	}
	v := ring.version(version)
	switch {
	case v == nil:
		return logical.ErrorResponse("connection %q has no key version %d", name, version), nil
	case v.Status == statusActive:
		return logical.ErrorResponse("key version %d is active and signs every token: rotate first (connections/%s/rotate), then destroy it once archived", version, name), nil
	case v.Status == statusPending:
		return logical.ErrorResponse("key version %d is pending in a rotation: let the rotation finish or fail before destroying it", version), nil
	case v.Status == statusDestroyed:
		// Idempotent; and it erases again, in case an earlier erase failed after the ring
		// already recorded the version destroyed.
		return nil, req.Storage.Delete(ctx, keyMaterialPath(name, version))
	}
	if err := b.destroyVersions(ctx, req.Storage, name, ring, []*keyVersion{v}); err != nil {
		return nil, err
	}
	b.Logger().Info("destroyed archived key version on operator request", "connection", name, "key_version", version)
	return nil, nil
}

// destroyVersions erases the private keys of versions and records it in the ring. The ring is
// written first: the opposite order could leave a ring naming material that is gone. If an erase
// then fails, the material lingers unreferenced until the version is destroyed again (an
// idempotent delete of keys/<version>) or the connection is deleted.
func (b *backend) destroyVersions(ctx context.Context, s logical.Storage, name string, ring *keyRing, versions []*keyVersion) error {
	now := b.now().UTC()
	for _, v := range versions {
		v.Status = statusDestroyed
		v.DestroyedAt = now
		v.Certificate = ""
	}
	if err := b.putKeyRing(ctx, s, name, ring); err != nil {
		return err
	}
	for _, v := range versions {
		if err := s.Delete(ctx, keyMaterialPath(name, v.Version)); err != nil {
			return err
		}
	}
	return nil
}

// importedKeyFields parses an optional private key and certificate from request fields.
func importedKeyFields(d *framework.FieldData, keyField, certField string) (*rsa.PrivateKey, *x509.Certificate, *fieldError) {
	raw, ok := d.GetOk(keyField)
	if !ok || strings.TrimSpace(raw.(string)) == "" {
		if c, ok := d.GetOk(certField); ok && strings.TrimSpace(c.(string)) != "" {
			return nil, nil, fieldErr(certField, "was given without %s: a certificate is imported only with its private key", keyField)
		}
		return nil, nil, nil
	}
	key, err := keyutil.ParsePrivateKeyPEM(raw.(string))
	if err != nil {
		return nil, nil, fieldErr(keyField, "%s", err)
	}
	c, ok := d.GetOk(certField)
	if !ok || strings.TrimSpace(c.(string)) == "" {
		return key, nil, nil
	}
	cert, err := keyutil.ParseCertificatePEM(c.(string))
	if err != nil {
		return nil, nil, fieldErr(certField, "%s", err)
	}
	if !keyutil.MatchesKey(cert, key) {
		return nil, nil, fieldErr(certField, "does not match %s: give the certificate that was made from this key", keyField)
	}
	return key, cert, nil
}

func (b *backend) pathImport(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name := d.Get("name").(string)
	key, cert, ferr := importedKeyFields(d, "private_key", "certificate")
	if ferr != nil {
		return ferr.response(), nil
	}
	if key == nil {
		return fieldErr("private_key", "is required: a PEM RSA private key of at least 2048 bits").response(), nil
	}
	activate := d.Get("activate").(bool)

	defer b.lockConn(name)()
	conn, err := getConnection(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	ring, err := getKeyRing(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if conn == nil || ring == nil {
		return logical.ErrorResponse("connection %q does not exist", name), nil
	}
	for _, v := range ring.Versions {
		if v.Status == statusDestroyed {
			continue
		}
		if existing, err := getKeyMaterial(ctx, req.Storage, name, v.Version); err == nil && existing.PublicKey.Equal(&key.PublicKey) {
			return fieldErr("private_key", "is already in the ring as version %d (%s)", v.Version, v.Status).response(), nil
		}
	}
	if activate && ring.Rotation.inFlight() {
		return logical.ErrorResponse("a rotation of connection %q is in flight (state %s): let it finish or fail before activating another key", name, ring.Rotation.State), nil
	}
	if !activate && ring.pending() != nil {
		return logical.ErrorResponse("connection %q already has a pending key (version %d): promote it or let its rotation finish or fail first", name, ring.pending().Version), nil
	}
	status := statusPending
	if activate {
		status = statusActive
	}
	v, err := b.newKeyVersion(ctx, req.Storage, name, conn, ring, statusPending, keySource{key: key, cert: cert})
	if err != nil {
		return errorResponse(err)
	}
	now := b.now().UTC()
	ring.Versions = append(ring.Versions, v)
	if activate {
		ring.activate(v, now)
	} else {
		ring.Rotation = newRotation(conn, ring, v, triggerImport, false, now)
	}
	if err := b.putKeyRing(ctx, req.Storage, name, ring); err != nil {
		// The material is unreferenced; remove it so storage is as it was.
		_ = req.Storage.Delete(ctx, keyMaterialPath(name, v.Version))
		return nil, err
	}
	b.scheduleConnection(name, conn, ring)
	if !activate { // a pending import is a rotation toward it
		b.events.rotationStarted(keyRotation(name), rotationDataPath(name), triggerImport, v.Version, ring.Rotation.PreviousVersion)
	}
	b.Logger().Info("imported key", "connection", name, "key_version", v.Version, "status", status, "fingerprint_sha256", v.FingerprintSHA256)
	data := keyInfo(v)
	data["version"] = v.Version
	data["certificate"] = v.Certificate
	return &logical.Response{Data: data}, nil
}

const certificateHelp = `
Returns the active certificate (the one to register on the Salesforce app), its SHA-256
fingerprint and expiry, and, while a rotation is in flight, the pending certificate.

    vault read -field=certificate <mount>/connections/<name>/certificate > vault.crt

With deploy=manual, upload pending_certificate to the app when a rotation starts; the plugin
notices when Salesforce accepts it and promotes the key.
`

const keysHelp = `
Lists the key versions of a connection. key_info gives, per version: status (pending, active,
archived, destroyed), fingerprint_sha256, key_type, created_at, activated_at, archived_at,
destroyed_at, not_after (certificate expiry) and origin (generated or imported).
`

const keyHelp = `
Reading a version returns its metadata, its certificate (unless destroyed) and the roles that
sign with it. Deleting destroys an archived version: its private key is erased for good, its
metadata stays. The active and pending versions cannot be destroyed.
`

const importHelp = `
Brings an existing RSA key into the ring, for migrating a Connected App whose certificate is
already registered. private_key is write-only and never returned. With activate=false (default)
the key becomes pending and is promoted once Salesforce accepts it (or with
connections/<name>/promote); with activate=true it becomes active at once.
`
