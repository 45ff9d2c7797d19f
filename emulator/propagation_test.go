package emulator

import (
	"crypto/rsa"
	"testing"
	"time"
)

func TestCertificatePropagation(t *testing.T) {
	type phase struct {
		after        time.Duration // since the change
		oldOK, newOK bool
	}
	cases := []struct {
		overlap string
		phases  []phase
	}{
		{"old", []phase{{0, true, false}, {4 * time.Minute, true, false}, {5 * time.Minute, false, true}}},
		{"both", []phase{{0, true, true}, {4 * time.Minute, true, true}, {5 * time.Minute, false, true}}},
		{"new", []phase{{0, false, true}, {4 * time.Minute, false, true}, {5 * time.Minute, false, true}}},
		{"", []phase{{0, true, false}, {5 * time.Minute, false, true}}}, // default is "old"
	}
	for _, c := range cases {
		t.Run("overlap="+c.overlap, func(t *testing.T) {
			f := newFixture(t, Config{PropagationDelay: 5 * time.Minute, PropagationOverlap: c.overlap})
			if err := f.e.SetAppCertificate(f.app.ConsumerKey, certB); err != nil {
				t.Fatal(err)
			}
			if got, _ := f.e.AppByConsumerKey(f.app.ConsumerKey); !sameCert(got.CertificatePEM, certB) {
				t.Error("stored definition should hold the new certificate at once")
			}
			start := f.clock.Now()
			for _, p := range c.phases {
				f.clock.Advance(start.Add(p.after).Sub(f.clock.Now()))
				acc := f.e.AcceptedCertificates(f.app.ConsumerKey)
				if has(acc, certA) != p.oldOK || has(acc, certB) != p.newOK {
					t.Errorf("+%s accepted old=%v new=%v, want %v %v", p.after, has(acc, certA), has(acc, certB), p.oldOK, p.newOK)
				}
				for _, k := range []struct {
					key  *rsa.PrivateKey
					want bool
				}{{keyA, p.oldOK}, {keyB, p.newOK}} {
					r := f.postToken(t, jwtForm(sign(t, k.key, f.claims())))
					if (r.status == 200) != k.want {
						t.Errorf("+%s: token with key %v -> %d %s", p.after, k.key == keyB, r.status, r.body)
					}
				}
			}
		})
	}
}

func TestPropagationSecondChangeKeepsPropagatedCert(t *testing.T) {
	f := newFixture(t, Config{PropagationDelay: 10 * time.Minute, PropagationOverlap: "old"})
	_ = f.e.SetAppCertificate(f.app.ConsumerKey, certB)
	f.clock.Advance(time.Minute)
	_, certC := newKeyCert(t, "vault-c")
	_ = f.e.SetAppCertificate(f.app.ConsumerKey, certC)
	if acc := f.e.AcceptedCertificates(f.app.ConsumerKey); len(acc) != 1 || !sameCert(acc[0], certA) {
		t.Fatalf("during the window only the propagated cert (A) validates, got %d certs", len(acc))
	}
	f.clock.Advance(10 * time.Minute)
	if acc := f.e.AcceptedCertificates(f.app.ConsumerKey); len(acc) != 1 || !sameCert(acc[0], certC) {
		t.Fatal("after the window only the latest cert validates")
	}
}

func TestSetAppCertificateImmediateAndErrors(t *testing.T) {
	f := newFixture(t, Config{})
	if err := f.e.SetAppCertificate(f.app.ConsumerKey, certB); err != nil {
		t.Fatal(err)
	}
	if acc := f.e.AcceptedCertificates(f.app.ConsumerKey); len(acc) != 1 || !sameCert(acc[0], certB) {
		t.Error("with no delay the new certificate applies at once")
	}
	if err := f.e.SetAppCertificate("nope", certB); err == nil {
		t.Error("unknown key accepted")
	}
	if err := f.e.SetAppCertificate(f.app.ConsumerKey, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"); err == nil {
		t.Error("garbage certificate accepted")
	}
	// Setting the same certificate (even as bare base64) is not a change.
	f2 := newFixture(t, Config{PropagationDelay: time.Hour, PropagationOverlap: "new"})
	_ = f2.e.SetAppCertificate(f2.app.ConsumerKey, bareBase64(certA))
	if acc := f2.e.AcceptedCertificates(f2.app.ConsumerKey); len(acc) != 1 || !sameCert(acc[0], certA) {
		t.Error("re-uploading the same certificate changed the accepted set")
	}
	// Removing the certificate stops all logins once propagated.
	_ = f.e.SetAppCertificate(f.app.ConsumerKey, "")
	if acc := f.e.AcceptedCertificates(f.app.ConsumerKey); len(acc) != 0 {
		t.Errorf("accepted after removal: %d", len(acc))
	}
}

func has(list []string, cert string) bool {
	for _, c := range list {
		if sameCert(c, cert) {
			return true
		}
	}
	return false
}
