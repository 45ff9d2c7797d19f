package emulator

import (
	"bytes"
	"testing"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/keyutil"
)

// RFC 5649 §6's examples, unwrapped; then each integrity check refusing a changed value.
func TestUnwrapKeyWithPaddingRFC5649(t *testing.T) {
	for _, x := range keyutil.RFC5649Examples {
		t.Run(x.Name, func(t *testing.T) {
			kek, key, wrapped := x.Bytes()
			if got, ok := unwrapKeyWithPadding(kek, wrapped); !ok || !bytes.Equal(got, key) {
				t.Fatalf("unwrap = %x %v, want %x", got, ok, key)
			}
			for i := range wrapped {
				tampered := bytes.Clone(wrapped)
				tampered[i] ^= 1
				if _, ok := unwrapKeyWithPadding(kek, tampered); ok {
					t.Fatalf("a value with byte %d changed was accepted", i)
				}
			}
			if _, ok := unwrapKeyWithPadding(kek, wrapped[:len(wrapped)-8]); ok {
				t.Fatal("a truncated value was accepted")
			}
			other := bytes.Clone(kek)
			other[0] ^= 1
			if _, ok := unwrapKeyWithPadding(other, wrapped); ok {
				t.Fatal("another KEK unwrapped it")
			}
			for _, bad := range [][]byte{nil, make([]byte, 8), make([]byte, 17)} {
				if _, ok := unwrapKeyWithPadding(kek, bad); ok {
					t.Fatalf("%d bytes were accepted", len(bad))
				}
			}
		})
	}
}
