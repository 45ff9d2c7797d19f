package backend

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/keyutil"
)

// Cache-only keys (Shield Cache-Only Key Service): a 32-byte data key that Salesforce never
// stores. Salesforce fetches it from cache-only/<kid> through a Named Credential when it needs
// it, and keeps it in its cache for at most 72 hours. Destroying the key in Vault is the point
// of the feature: once Salesforce's cache is flushed, what it encrypted cannot be read again.
//
// The data key and the hash of the Named Credential's bearer secret live only under the
// seal-wrapped secrets/ prefix; the metadata entry holds the certificate (public) and settings.

// cacheOnlyPrefix holds one metadata entry per kid, mount-wide: the callout names only the kid,
// so a kid is unique across the mount's connections.
const cacheOnlyPrefix = "cache-only-keys/"

const (
	dataKeyBytes       = 32 // what Salesforce accepts (INCORRECT_DATA_ENCRYPTION_KEY_SIZE otherwise)
	bearerSecretBytes  = 32
	bearerSecretPrefix = "sfcok_" // makes a leaked secret recognisable to secret scanners
	maxKidLength       = 64
	maxRequestIDLength = 256
	// maxAuthorizationLength bounds the header we decode: a bearer secret is 49 characters, a
	// Basic value of a 64-character kid and the secret well under 200.
	maxAuthorizationLength = 512
	// maxCertificatePEMLength bounds the certificate field: a 4096-bit certificate is ~2 KiB.
	maxCertificatePEMLength = 16 << 10

	authSchemeBearer = "bearer"
	authSchemeBasic  = "basic"

	cacheOnlyActive    = "active"
	cacheOnlyDestroyed = "destroyed"
)

// kidRe is the kid's charset: it travels in a URL path, a JWE header and Salesforce's
// RemoteKeyIdentifier, so only characters that need no escaping anywhere.
var kidRe = regexp.MustCompile(fmt.Sprintf(`^[A-Za-z0-9_-]{1,%d}$`, maxKidLength))

// requestIDRe is what a requestId nonce may hold: visible ASCII, echoed as the JWE's jti.
var requestIDRe = regexp.MustCompile(fmt.Sprintf(`^[\x21-\x7e]{1,%d}$`, maxRequestIDLength))

// cacheOnlyKey is a cache-only key's metadata: nothing in it is secret.
type cacheOnlyKey struct {
	Kid             string    `json:"kid"`
	Connection      string    `json:"connection"`
	Certificate     string    `json:"certificate"`      // PEM of the BYOK certificate the key is wrapped for
	CertificateName string    `json:"certificate_name"` // its unique name at Salesforce, when resolved there
	ReplayDetection bool      `json:"replay_detection"`
	AuthScheme      string    `json:"auth_scheme"`
	CreatedAt       time.Time `json:"created_at"`
	SecretRotatedAt time.Time `json:"secret_rotated_at,omitempty"`
	DestroyedAt     time.Time `json:"destroyed_at,omitempty"`
	// Registration is the key's TenantSecret at Salesforce (nil: not registered from Vault).
	Registration *cacheOnlyRegistration `json:"registration,omitempty"`
}

// cacheOnlySecret is the only entry that holds a cache-only data key. Destroying the key
// rewrites it without DataKey; the bearer hash stays so that Salesforce, still
// authenticated, is told the key is destroyed rather than that it is not allowed.
type cacheOnlySecret struct {
	DataKey    []byte `json:"data_key,omitempty"`
	BearerHash []byte `json:"bearer_hash"` // SHA-256 of the Named Credential's secret
}

func cacheOnlyKeyPath(kid string) string { return cacheOnlyPrefix + kid }

func cacheOnlySecretPath(conn, kid string) string {
	return secretsPrefix + conn + "/cache-only/" + kid
}

func getCacheOnlyKey(ctx context.Context, s logical.Storage, kid string) (*cacheOnlyKey, error) {
	return getEntry[cacheOnlyKey](ctx, s, cacheOnlyKeyPath(kid))
}

func getCacheOnlySecret(ctx context.Context, s logical.Storage, k *cacheOnlyKey) (*cacheOnlySecret, error) {
	return getEntry[cacheOnlySecret](ctx, s, cacheOnlySecretPath(k.Connection, k.Kid))
}

// status is what a read reports: a key whose data key is gone is destroyed even if the
// metadata write that records it did not happen (a crash mid-destroy).
func (k *cacheOnlyKey) status(sec *cacheOnlySecret) string {
	if !k.DestroyedAt.IsZero() || sec == nil || len(sec.DataKey) == 0 {
		return cacheOnlyDestroyed
	}
	return cacheOnlyActive
}

// lockCacheOnlyKey serialises the writes to one kid. It shares the connection lock table
// under a name no connection can have (connection names hold no '/'), so it never waits for
// a connection's lock except by hash collision, and is never held with one.
func (b *backend) lockCacheOnlyKey(kid string) (unlock func()) {
	lock := locksutil.LockForKey(b.connLocks, cacheOnlyPrefix+kid)
	lock.Lock()
	return lock.Unlock
}

func validKid(kid string) *fieldError {
	if !kidRe.MatchString(kid) {
		return fieldErr("kid", "must be 1 to %d characters of A-Z, a-z, 0-9, '-' and '_' (it is the key identifier Salesforce sends in the callout URL)", maxKidLength)
	}
	return nil
}

// parseBYOKCertificate checks the certificate a key is wrapped for: Salesforce's BYOK
// certificates are RSA 2048 or 4096 bits. Errors never quote the input.
func parseBYOKCertificate(field, pemText string) (*x509.Certificate, *fieldError) {
	if len(pemText) > maxCertificatePEMLength {
		return nil, fieldErr(field, "is longer than %d bytes: give one PEM certificate", maxCertificatePEMLength)
	}
	cert, err := keyutil.ParseCertificatePEM(pemText)
	if err != nil {
		return nil, fieldErr(field, "must be the BYOK certificate's PEM (Setup > Certificate and Key Management > Download Certificate): %v", err)
	}
	return cert, checkBYOKKey(field, cert)
}

func checkBYOKKey(field string, cert *x509.Certificate) *fieldError {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fieldErr(field, "must hold an RSA public key: Salesforce's BYOK certificates are RSA 2048 or 4096 bits")
	}
	if bits := pub.N.BitLen(); bits != 2048 && bits != 4096 {
		return fieldErr(field, "holds a %d-bit RSA key: Salesforce's BYOK certificates are RSA 2048 or 4096 bits", bits)
	}
	return nil
}

// newBearerSecret is a Named Credential secret and the hash kept of it. 256 random bits make
// a fast hash safe: there is nothing to guess.
func newBearerSecret() (secret string, hash []byte, err error) {
	raw := make([]byte, bearerSecretBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, err
	}
	secret = bearerSecretPrefix + base64.RawURLEncoding.EncodeToString(raw)
	return secret, bearerHash(secret), nil
}

func bearerHash(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

func newDataKey() ([]byte, error) {
	key := make([]byte, dataKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return key, nil
}

// authorizes reports whether an Authorization header value carries this key's secret in the
// key's scheme: "Bearer <secret>", or with auth_scheme=basic "Basic base64(<kid>:<secret>)".
// Both comparisons take constant time.
func (k *cacheOnlyKey) authorizes(sec *cacheOnlySecret, header string) bool {
	if len(header) > maxAuthorizationLength || len(sec.BearerHash) != sha256.Size {
		return false
	}
	scheme, value, ok := strings.Cut(header, " ")
	if !ok {
		return false
	}
	value = strings.TrimSpace(value)
	user := k.Kid
	switch {
	case k.AuthScheme == authSchemeBasic && strings.EqualFold(scheme, "Basic"):
		decoded, err := base64.StdEncoding.DecodeString(value)
		if err != nil {
			return false
		}
		if user, value, ok = strings.Cut(string(decoded), ":"); !ok {
			return false
		}
	case k.AuthScheme != authSchemeBasic && strings.EqualFold(scheme, "Bearer"):
	default:
		return false
	}
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(k.Kid))
	secretOK := subtle.ConstantTimeCompare(bearerHash(value), sec.BearerHash)
	return userOK&secretOK == 1
}

// authorizationHeader is the one Authorization value of a request ("" for none or several).
// Vault hands a plugin the headers its mount passes through, keyed as the client sent them.
func authorizationHeader(headers map[string][]string) string {
	var values []string
	for k, v := range headers {
		if strings.EqualFold(k, "Authorization") {
			values = append(values, v...)
		}
	}
	if len(values) != 1 {
		return ""
	}
	return values[0]
}

// cacheOnlyJWE wraps the data key as Salesforce expects it: a compact JWE whose protected
// header is exactly {"alg":"RSA-OAEP","enc":"A256GCM","kid":<kid>} (plus "jti":<requestID>
// when Salesforce sent a nonce), the content key RSA-OAEP (SHA-1) wrapped under the BYOK
// certificate, the payload under AES-256-GCM with a 96-bit IV and the encoded header as AAD.
func cacheOnlyJWE(kid, requestID string, pub *rsa.PublicKey, dataKey []byte) (string, error) {
	opts := &jose.EncrypterOptions{}
	if requestID != "" {
		opts = opts.WithHeader("jti", requestID)
	}
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.RSA_OAEP, Key: pub, KeyID: kid}, opts)
	if err != nil {
		return "", fmt.Errorf("preparing the JWE: %w", err)
	}
	obj, err := enc.Encrypt(dataKey)
	if err != nil {
		return "", fmt.Errorf("encrypting the JWE: %w", err)
	}
	return obj.CompactSerialize()
}
