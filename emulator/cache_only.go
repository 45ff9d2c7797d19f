package emulator

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // JWE's RSA-OAEP is OAEP with SHA-1 (RFC 7518 §4.3), what Salesforce expects
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The Shield Cache-Only Key Service callout, as Salesforce runs it: GET <Named Credential
// URL>/<kid> (with ?requestId=<nonce> under replay detection), then the checks Salesforce makes
// on the answer before it uses the key. It is a client, not a route: Salesforce calls the key
// service, here Vault.

// Callout results, named as RemoteKeyCalloutEvent's StatusCode names them. The first seven are
// in Salesforce's troubleshooting table; the rest are the emulator's names for checks whose
// code Salesforce does not document (see ASSUMPTIONS.md).
const (
	CalloutAuthenticationFailure  = "AUTHENTICATION_FAILURE_RESPONSE"
	CalloutErrorHTTPCode          = "ERROR_HTTP_CODE"
	CalloutDestroyHTTPCode        = "DESTROY_HTTP_CODE"
	CalloutEmptyResponse          = "EMPTY_RESPONSE"
	CalloutIllegalHeaderParameter = "ILLEGAL_PARAMETERS_IN_JWE_HEADER"
	CalloutIncorrectAlgorithm     = "INCORRECT_ALGORITHM_IN_JWE_HEADER"
	CalloutIncorrectKeySize       = "INCORRECT_DATA_ENCRYPTION_KEY_SIZE"

	CalloutIncorrectEncryption = "INCORRECT_ENCRYPTION_ALGORITHM_IN_JWE_HEADER" // [U] name
	CalloutIncorrectKeyID      = "INCORRECT_KEYID_IN_JWE_HEADER"                // [U] name
	CalloutIncorrectNonce      = "INCORRECT_NONCE_IN_JWE_HEADER"                // [U] name
	CalloutMalformedResponse   = "MALFORMED_JSON_RESPONSE"                      // [U] name
	CalloutMalformedJWE        = "MALFORMED_JWE_RESPONSE"                       // [U] name
	CalloutUnreachable         = "UNKNOWN_ERROR"                                // [U] name
)

// calloutTimeout is how long the callout waits for the key service [U: Salesforce says only
// that the key service must answer quickly; a key manager's guide says 3 s].
const calloutTimeout = 10 * time.Second

// maxCalloutBody bounds what is read of an answer: a JWE of a 32-byte key under RSA-4096 is
// under 1 KiB.
const maxCalloutBody = 64 << 10

// CalloutError is a failed cache-only key callout.
type CalloutError struct {
	Code   string // a RemoteKeyCalloutEvent StatusCode
	Status int    // the key service's HTTP status, when it answered
	Detail string
}

func (e *CalloutError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Detail)
	}
	return e.Code + ": " + e.Detail
}

func calloutErr(code, format string, args ...any) *CalloutError {
	return &CalloutError{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// FetchCacheOnlyKey runs one callout for kid against the key service at baseURL (the Named
// Credential's URL), authenticated with "Authorization: Bearer <bearer>", and opens the
// answer with the BYOK certificate's private key. With replay it sends a fresh requestId nonce
// and requires it back as the JWE's jti. The error is always a *CalloutError.
func (e *Emulator) FetchCacheOnlyKey(ctx context.Context, baseURL, kid, bearer string, rsaPriv *rsa.PrivateKey, replay bool) (key []byte, err error) {
	target := strings.TrimRight(baseURL, "/") + "/" + url.PathEscape(kid)
	nonce := ""
	if replay {
		raw := make([]byte, 16)
		if _, err := rand.Read(raw); err != nil {
			return nil, calloutErr(CalloutUnreachable, "making a nonce: %v", err)
		}
		nonce = hex.EncodeToString(raw)
		target += "?requestId=" + url.QueryEscape(nonce)
	}
	ctx, cancel := context.WithTimeout(ctx, calloutTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, calloutErr(CalloutUnreachable, "bad Named Credential URL: %v", err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, calloutErr(CalloutUnreachable, "the key service is unreachable: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCalloutBody))
	if err != nil {
		return nil, calloutErr(CalloutUnreachable, "reading the answer: %v", err)
	}
	key, cerr := checkCalloutAnswer(resp.StatusCode, body, kid, nonce, rsaPriv)
	if cerr != nil {
		e.logf("cache-only callout for %s failed: %s", kid, cerr.Code)
		return nil, cerr
	}
	e.logf("cache-only callout for %s: SUCCESS", kid)
	return key, nil
}

// checkCalloutAnswer is what Salesforce checks of the key service's answer, in order.
func checkCalloutAnswer(status int, body []byte, kid, nonce string, priv *rsa.PrivateKey) ([]byte, *CalloutError) {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return nil, &CalloutError{Code: CalloutAuthenticationFailure, Status: status, Detail: "the key service refused the Named Credential"}
	case status == http.StatusNotFound || status == http.StatusGone:
		return nil, &CalloutError{Code: CalloutDestroyHTTPCode, Status: status, Detail: "the key service reports the key destroyed"}
	case status != http.StatusOK:
		return nil, &CalloutError{Code: CalloutErrorHTTPCode, Status: status, Detail: "a successful answer is HTTP 200"}
	case len(bytes.TrimSpace(body)) == 0:
		return nil, calloutErr(CalloutEmptyResponse, "the key service answered an empty body")
	}
	var answer struct {
		Kid string `json:"kid"`
		JWE string `json:"jwe"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || answer.JWE == "" {
		return nil, calloutErr(CalloutMalformedResponse, `the answer must be JSON {"kid": "...", "jwe": "..."}`)
	}
	if answer.Kid != kid {
		return nil, calloutErr(CalloutIncorrectKeyID, "the answer's kid is not the one asked for")
	}
	return OpenCacheOnlyJWE(answer.JWE, kid, nonce, priv)
}

// OpenCacheOnlyJWE checks and decrypts a cache-only key JWE as Salesforce does, with the
// standard library only: the protected header holds alg RSA-OAEP, enc A256GCM, the kid, and
// jti equal to nonce (only when nonce is not ""), nothing else; the content key unwraps with
// RSA-OAEP (SHA-1); the payload opens under AES-256-GCM with a 96-bit IV and the encoded
// header as AAD; and it is 32 bytes. Tests of the key service use it as an independent check.
func OpenCacheOnlyJWE(compact, kid, nonce string, priv *rsa.PrivateKey) ([]byte, *CalloutError) {
	parts := strings.Split(compact, ".")
	if len(parts) != 5 {
		return nil, calloutErr(CalloutMalformedJWE, "a compact JWE has 5 parts, this one %d", len(parts))
	}
	var raw [5][]byte
	for i, p := range parts {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			return nil, calloutErr(CalloutMalformedJWE, "part %d is not base64url without padding", i+1)
		}
		raw[i] = b
	}
	if cerr := checkCacheOnlyHeader(raw[0], kid, nonce); cerr != nil {
		return nil, cerr
	}
	cek, err := rsa.DecryptOAEP(sha1.New(), nil, priv, raw[1], nil) //nolint:gosec // RSA-OAEP as JWE defines it
	if err != nil || len(cek) != 32 {
		return nil, calloutErr(CalloutMalformedJWE, "the content key does not unwrap to an AES-256 key with the BYOK certificate's private key (RSA-OAEP, SHA-1)")
	}
	block, _ := aes.NewCipher(cek) // a 32-byte key always makes a cipher
	gcm, _ := cipher.NewGCM(block)
	if len(raw[2]) != gcm.NonceSize() {
		return nil, calloutErr(CalloutMalformedJWE, "the IV is %d bytes: A256GCM takes 96 bits", len(raw[2]))
	}
	key, err := gcm.Open(nil, raw[2], append(raw[3], raw[4]...), []byte(parts[0]))
	if err != nil {
		return nil, calloutErr(CalloutMalformedJWE, "the payload does not decrypt (AES-256-GCM, AAD the encoded header)")
	}
	if len(key) != 32 {
		return nil, calloutErr(CalloutIncorrectKeySize, "data encryption keys encoded in a JWE must be 32 bytes; this one is %d", len(key))
	}
	return key, nil
}

// checkCacheOnlyHeader checks the JWE's protected header: the parameters allowed, and their
// values.
func checkCacheOnlyHeader(raw []byte, kid, nonce string) *CalloutError {
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		return calloutErr(CalloutMalformedJWE, "the protected header is not a JSON object")
	}
	allowed := map[string]bool{"alg": true, "enc": true, "kid": true, "jti": nonce != ""}
	for p := range h {
		if !allowed[p] {
			return calloutErr(CalloutIllegalHeaderParameter, "the JWE header must use alg, enc, kid (and jti with replay detection), but no others; found %q", p)
		}
	}
	switch {
	case h["alg"] != "RSA-OAEP":
		return calloutErr(CalloutIncorrectAlgorithm, "the JWE header's alg must be RSA-OAEP; found %v", h["alg"])
	case h["enc"] != "A256GCM":
		return calloutErr(CalloutIncorrectEncryption, "the JWE header's enc must be A256GCM; found %v", h["enc"])
	case h["kid"] != kid:
		return calloutErr(CalloutIncorrectKeyID, "the JWE header's kid is not the one asked for")
	case nonce != "" && h["jti"] != nonce:
		return calloutErr(CalloutIncorrectNonce, "the JWE header's jti must be the requestId nonce of this callout")
	}
	return nil
}
