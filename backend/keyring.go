package backend

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/keyutil"
)

// Key version statuses. Exactly one version is active; at most one is pending.
const (
	statusPending   = "pending"
	statusActive    = "active"
	statusArchived  = "archived"
	statusDestroyed = "destroyed"

	originGenerated = "generated"
	originImported  = "imported"
)

// keyVersion is the metadata of one key of a connection's ring. The private key itself is
// stored apart, under the seal-wrapped keys/ prefix, and only read to sign.
type keyVersion struct {
	Version           int       `json:"version"`
	Status            string    `json:"status"`
	KeyType           string    `json:"key_type"`
	Origin            string    `json:"origin"`
	Certificate       string    `json:"certificate,omitempty"` // PEM; dropped when destroyed
	FingerprintSHA256 string    `json:"fingerprint_sha256"`
	NotAfter          time.Time `json:"not_after"`
	CreatedAt         time.Time `json:"created_at"`
	ActivatedAt       time.Time `json:"activated_at,omitempty"`
	ArchivedAt        time.Time `json:"archived_at,omitempty"`
	DestroyedAt       time.Time `json:"destroyed_at,omitempty"`
	// BoundOrigin is the id of the origin (keyRing.Origins) the key was made for and may sign
	// for. Empty in rings written before origins were kept: such a key is bound to the
	// connection's origin, which is pinned into the ring before it may change.
	BoundOrigin string `json:"bound_origin,omitempty"`
}

// keyRing is a connection's versions and its rotation state, stored as one entry so that a
// promotion (pending → active, active → archived, state → idle) is a single atomic write.
type keyRing struct {
	Versions []*keyVersion `json:"versions"`
	Rotation rotationState `json:"rotation"`
	// Origins are the origins keys are bound to, by id. Kept after their keys are destroyed:
	// a lease minted there is still revoked there.
	Origins map[string]*origin `json:"origins,omitempty"`
	// LegacyOrigin is the origin the connection had when its origin first changed: where the
	// leases of releases that recorded no origin were issued. Empty: the current origin.
	LegacyOrigin string `json:"legacy_origin,omitempty"`
}

// bind records that v is made for conn's current origin.
func (r *keyRing) bind(v *keyVersion, conn *connectionEntry) {
	v.BoundOrigin = r.keep(originOf(conn))
}

// keep records origin o in the ring and returns its id.
func (r *keyRing) keep(o *origin) string {
	if r.Origins == nil {
		r.Origins = map[string]*origin{}
	}
	id := o.id()
	r.Origins[id] = o
	return id
}

// pinLegacy binds every version that predates origins, and the leases that recorded none, to
// conn's current origin, so that a change of the connection's origin cannot carry them along.
// It reports whether it changed r.
func (r *keyRing) pinLegacy(conn *connectionEntry) bool {
	changed := false
	if r.LegacyOrigin == "" {
		r.LegacyOrigin, changed = r.keep(originOf(conn)), true
	}
	for _, v := range r.Versions {
		if v.BoundOrigin == "" {
			r.bind(v, conn)
			changed = true
		}
	}
	return changed
}

// originFor is the origin v may sign for, and its id.
func (r *keyRing) originFor(v *keyVersion, conn *connectionEntry) (*origin, string) {
	if v.BoundOrigin == "" {
		o := originOf(conn)
		return o, o.id()
	}
	return r.Origins[v.BoundOrigin], v.BoundOrigin
}

// boundToCurrent reports whether v is made for the origin conn names now.
func (r *keyRing) boundToCurrent(v *keyVersion, conn *connectionEntry) bool {
	_, id := r.originFor(v, conn)
	return id == originOf(conn).id()
}

func (r *keyRing) byStatus(status string) *keyVersion {
	for _, v := range r.Versions {
		if v.Status == status {
			return v
		}
	}
	return nil
}

func (r *keyRing) active() *keyVersion  { return r.byStatus(statusActive) }
func (r *keyRing) pending() *keyVersion { return r.byStatus(statusPending) }

// stalled is a failed rotation that is not over: its pending key is still probed, slowly, and
// promoted once Salesforce accepts it (a certificate registered late, by hand). The stored and
// reported state stays "failed", the name the API gives it; reads add stalled=true so an
// operator can tell it from a rotation that has stopped.
func (r *keyRing) stalled() bool { return r.Rotation.State == stateFailed && r.pending() != nil }

func (r *keyRing) version(n int) *keyVersion {
	for _, v := range r.Versions {
		if v.Version == n {
			return v
		}
	}
	return nil
}

func (r *keyRing) nextVersion() int {
	n := 0
	for _, v := range r.Versions {
		if v.Version > n {
			n = v.Version
		}
	}
	return n + 1
}

// archived returns the archived versions, newest first.
func (r *keyRing) archived() []*keyVersion {
	var out []*keyVersion
	for _, v := range r.Versions {
		if v.Status == statusArchived {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version > out[j].Version })
	return out
}

// activate makes v the active version and archives the previous one.
func (r *keyRing) activate(v *keyVersion, now time.Time) {
	if old := r.active(); old != nil && old != v {
		old.Status = statusArchived
		old.ArchivedAt = now
	}
	v.Status = statusActive
	v.ActivatedAt = now
	v.ArchivedAt = time.Time{}
}

func getKeyRing(ctx context.Context, s logical.Storage, conn string) (*keyRing, error) {
	return getEntry[keyRing](ctx, s, keyringPrefix+conn)
}

// putKeyRing writes a key ring and drops the connection's snapshot (after the write, failed or
// not: what storage holds is then unknown).
func (b *backend) putKeyRing(ctx context.Context, s logical.Storage, conn string, r *keyRing) error {
	defer b.snaps.drop(conn)
	return putJSON(ctx, s, keyringPrefix+conn, r)
}

// keyMaterial is the only storage entry that holds a private key.
type keyMaterial struct {
	PrivateKey []byte `json:"private_key"` // PKCS#8 DER
}

func keyMaterialPath(conn string, version int) string {
	return keysPrefix + conn + "/" + strconv.Itoa(version)
}

func putKeyMaterial(ctx context.Context, s logical.Storage, conn string, version int, key *rsa.PrivateKey) error {
	der, err := keyutil.MarshalPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding key version %d: %w", version, err)
	}
	return putJSON(ctx, s, keyMaterialPath(conn, version), &keyMaterial{PrivateKey: der})
}

func getKeyMaterial(ctx context.Context, s logical.Storage, conn string, version int) (*rsa.PrivateKey, error) {
	var m keyMaterial
	found, err := getJSON(ctx, s, keyMaterialPath(conn, version), &m)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("key version %d of connection %q has no key material in storage", version, conn)
	}
	key, err := keyutil.UnmarshalPrivateKey(m.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("key version %d of connection %q: %w", version, conn, err)
	}
	key.Precompute()
	return key, nil
}

// deleteAllKeyMaterial erases every stored private key of a connection.
func deleteAllKeyMaterial(ctx context.Context, s logical.Storage, conn string) error {
	return deleteAll(ctx, s, keysPrefix+conn+"/")
}

// keySource is what a new key version is made from.
type keySource struct {
	key       *rsa.PrivateKey   // nil: generate one now
	cert      *x509.Certificate // the imported key's certificate; nil: self-signed
	generated bool              // key was generated by Vault, ahead of a lock
}

// newKeyVersion makes the metadata and certificate of a key and stores its private key. The
// caller adds the version to the ring and stores the ring: until then the material is
// unreferenced, so a failure leaves nothing a reader can see.
func (b *backend) newKeyVersion(ctx context.Context, s logical.Storage, name string, conn *connectionEntry,
	ring *keyRing, status string, src keySource) (*keyVersion, error) {
	version := ring.nextVersion()
	now := b.now().UTC()
	key, cert := src.key, src.cert
	origin := originImported
	if key == nil || src.generated {
		origin = originGenerated
	}
	if key == nil {
		var err error
		if key, err = keyutil.Generate(nil, conn.KeyType); err != nil {
			return nil, err
		}
	}
	var certPEM string
	if cert == nil {
		subject, err := keyutil.ParseSubject(conn.subject(name))
		if err != nil { // validated at write; a subject stored by an older release may not be
			return nil, fieldErr("certificate_subject", "%s: write a valid one on the connection", err)
		}
		certPEM, cert, err = keyutil.SelfSign(nil, key, keyutil.CertRequest{Subject: subject, Now: now, NotAfter: now.Add(conn.CertificateTTL)})
		if err != nil {
			return nil, err
		}
	} else {
		certPEM = keyutil.EncodeCertificate(cert)
	}
	if err := putKeyMaterial(ctx, s, name, version, key); err != nil {
		return nil, err
	}
	v := &keyVersion{
		Version:           version,
		Status:            status,
		KeyType:           keyutil.TypeOf(key),
		Origin:            origin,
		Certificate:       certPEM,
		FingerprintSHA256: keyutil.Fingerprint(cert),
		NotAfter:          cert.NotAfter.UTC(),
		CreatedAt:         now,
	}
	if status == statusActive {
		v.ActivatedAt = now
	}
	ring.bind(v, conn)
	return v, nil
}
