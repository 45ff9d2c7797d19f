package emulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// keyService is a stand-in key service whose answer each case sets; it records what the
// callout sent. The JWEs are made with go-jose, independently of the emulator's checks.
type keyService struct {
	mu      sync.Mutex
	answer  func(nonce string) (status int, body string)
	gotPath string
	gotAuth string
	gotID   string
}

func (s *keyService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.gotPath, s.gotAuth, s.gotID = r.URL.Path, r.Header.Get("Authorization"), r.URL.Query().Get("requestId")
	answer := s.answer
	s.mu.Unlock()
	status, body := answer(r.URL.Query().Get("requestId"))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

type jweSpec struct {
	alg     jose.KeyAlgorithm
	enc     jose.ContentEncryption
	kid     string
	jti     string
	extra   string // an extra header parameter
	payload []byte
}

func makeJWE(t *testing.T, pub *rsa.PublicKey, s jweSpec) string {
	t.Helper()
	opts := &jose.EncrypterOptions{}
	if s.jti != "" {
		opts = opts.WithHeader("jti", s.jti)
	}
	if s.extra != "" {
		opts = opts.WithHeader(jose.HeaderKey(s.extra), "x")
	}
	enc, err := jose.NewEncrypter(s.enc, jose.Recipient{Algorithm: s.alg, Key: pub, KeyID: s.kid}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := enc.Encrypt(s.payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func answerJSON(kid, jwe string) string {
	b, _ := json.Marshal(map[string]string{"kid": kid, "jwe": jwe})
	return string(b)
}

func TestFetchCacheOnlyKey(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	dek := bytes.Repeat([]byte{7}, 32)
	good := func(nonce string) jweSpec {
		return jweSpec{alg: jose.RSA_OAEP, enc: jose.A256GCM, kid: "k1", jti: nonce, payload: dek}
	}
	with := func(f func(*jweSpec)) func(string) (int, string) {
		return func(nonce string) (int, string) {
			s := good(nonce)
			f(&s)
			return 200, answerJSON("k1", makeJWE(t, &priv.PublicKey, s))
		}
	}
	svc := &keyService{}
	srv := httptest.NewServer(svc)
	defer srv.Close()
	emu := New(Config{})

	for _, c := range []struct {
		name   string
		replay bool
		answer func(nonce string) (int, string)
		want   string // "" for success
	}{
		{"a good answer", false, with(func(*jweSpec) {}), ""},
		{"a good answer with replay detection", true, with(func(*jweSpec) {}), ""},
		{"401", false, func(string) (int, string) { return 401, `{"error":"unauthorized"}` }, CalloutAuthenticationFailure},
		{"403", false, func(string) (int, string) { return 403, "" }, CalloutAuthenticationFailure},
		{"404", false, func(string) (int, string) { return 404, `{"error":"key destroyed"}` }, CalloutDestroyHTTPCode},
		{"500", false, func(string) (int, string) { return 500, "oops" }, CalloutErrorHTTPCode},
		{"400", true, func(string) (int, string) { return 400, `{"error":"requestId is required"}` }, CalloutErrorHTTPCode},
		{"an empty body", false, func(string) (int, string) { return 200, "  " }, CalloutEmptyResponse},
		{"not JSON", false, func(string) (int, string) { return 200, "<html>" }, CalloutMalformedResponse},
		{"no jwe", false, func(string) (int, string) { return 200, `{"kid":"k1"}` }, CalloutMalformedResponse},
		{"another kid in the JSON", false, func(n string) (int, string) {
			return 200, answerJSON("k2", makeJWE(t, &priv.PublicKey, good(n)))
		}, CalloutIncorrectKeyID},
		{"another kid in the header", false, with(func(s *jweSpec) { s.kid = "k2" }), CalloutIncorrectKeyID},
		{"alg RSA-OAEP-256", false, with(func(s *jweSpec) { s.alg = jose.RSA_OAEP_256 }), CalloutIncorrectAlgorithm},
		{"alg RSA1_5", false, with(func(s *jweSpec) { s.alg = jose.RSA1_5 }), CalloutIncorrectAlgorithm},
		{"enc A128GCM", false, with(func(s *jweSpec) { s.enc = jose.A128GCM }), CalloutIncorrectEncryption},
		{"an extra header parameter", false, with(func(s *jweSpec) { s.extra = "cty" }), CalloutIllegalHeaderParameter},
		{"a jti without replay detection", false, with(func(s *jweSpec) { s.jti = "unasked" }), CalloutIllegalHeaderParameter},
		{"no jti under replay detection", true, with(func(s *jweSpec) { s.jti = "" }), CalloutIncorrectNonce},
		{"another jti", true, with(func(s *jweSpec) { s.jti = "stale-nonce" }), CalloutIncorrectNonce},
		{"a 16-byte key", false, with(func(s *jweSpec) { s.payload = dek[:16] }), CalloutIncorrectKeySize},
		{"a 64-byte key", false, with(func(s *jweSpec) { s.payload = append(dek, dek...) }), CalloutIncorrectKeySize},
		{"a JWE for another certificate", false, func(n string) (int, string) {
			other, _ := rsa.GenerateKey(rand.Reader, 2048)
			return 200, answerJSON("k1", makeJWE(t, &other.PublicKey, good(n)))
		}, CalloutMalformedJWE},
		{"a tampered ciphertext", false, func(n string) (int, string) {
			parts := strings.Split(makeJWE(t, &priv.PublicKey, good(n)), ".")
			parts[3] = "AAAA" + parts[3][4:]
			return 200, answerJSON("k1", strings.Join(parts, "."))
		}, CalloutMalformedJWE},
		{"four parts", false, func(string) (int, string) { return 200, answerJSON("k1", "a.b.c.d") }, CalloutMalformedJWE},
	} {
		svc.mu.Lock()
		svc.answer = c.answer
		svc.mu.Unlock()
		key, err := emu.FetchCacheOnlyKey(context.Background(), srv.URL+"/v1/salesforce/cache-only/", "k1", "s3cret", priv, c.replay)
		svc.mu.Lock()
		path, auth, id := svc.gotPath, svc.gotAuth, svc.gotID
		svc.mu.Unlock()
		if path != "/v1/salesforce/cache-only/k1" || auth != "Bearer s3cret" || (id != "") != c.replay {
			t.Errorf("%s: the callout sent path %q, Authorization %q, requestId %q", c.name, path, auth, id)
		}
		var ce *CalloutError
		switch {
		case c.want == "" && (err != nil || !bytes.Equal(key, dek)):
			t.Errorf("%s: got %v, key %x", c.name, err, key)
		case c.want != "" && (!errors.As(err, &ce) || ce.Code != c.want || key != nil):
			t.Errorf("%s: got %v, want %s", c.name, err, c.want)
		}
	}

	// A key service that is not there.
	srv.Close()
	_, err = emu.FetchCacheOnlyKey(context.Background(), srv.URL, "k1", "s3cret", priv, false)
	var ce *CalloutError
	if !errors.As(err, &ce) || ce.Code != CalloutUnreachable {
		t.Fatalf("unreachable key service: %v", err)
	}
}
