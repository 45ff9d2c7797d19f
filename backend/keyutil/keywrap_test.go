package keyutil

import (
	"bytes"
	"testing"
)

func TestWrapKeyWithPaddingRFC5649Vectors(t *testing.T) {
	for _, x := range RFC5649Examples {
		t.Run(x.Name, func(t *testing.T) {
			kek, key, want := x.Bytes()
			got, err := WrapKeyWithPadding(kek, key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("wrap = %x, want %x", got, want)
			}
		})
	}
}

func TestWrapKeyWithPaddingRefusals(t *testing.T) {
	if _, err := WrapKeyWithPadding(make([]byte, 20), make([]byte, 32)); err == nil {
		t.Error("a 20-byte KEK was accepted")
	}
	if _, err := WrapKeyWithPadding(make([]byte, 32), nil); err == nil {
		t.Error("an empty key was accepted")
	}
	// A 32-byte key (a tenant secret) wraps to 40 bytes: the AIV and four semiblocks.
	if got, err := WrapKeyWithPadding(make([]byte, 32), make([]byte, 32)); err != nil || len(got) != 40 {
		t.Fatalf("a 32-byte key wraps to %d bytes (%v), want 40", len(got), err)
	}
}
