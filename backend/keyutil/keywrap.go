package keyutil

import (
	"crypto/aes"
	"encoding/binary"
	"errors"
)

// WrapKeyWithPadding is AES Key Wrap with Padding (RFC 5649 §4.1, NIST SP 800-38F KWP) of
// key under kek (16, 24 or 32 bytes). It is what PKCS#11's CKM_AES_KEY_WRAP_PAD computes,
// the second half of CKM_RSA_AES_KEY_WRAP. Neither the Go standard library nor a maintained
// module on the Go module proxy offers it (go-jose has RFC 3394 only, with its fixed IV), so
// it is written here; the tests check it against the RFC's own examples (§6, RFC5649Examples).
func WrapKeyWithPadding(kek, key []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(key) == 0 || uint64(len(key)) > 1<<32-1 {
		return nil, errors.New("key wrap: the key must be 1 to 2^32-1 bytes")
	}
	// The Alternative Initial Value (§3): the constant A65959A6, then the key's length in
	// bytes (the Message Length Indicator), both big-endian.
	var a [8]byte
	binary.BigEndian.PutUint32(a[:4], 0xA65959A6)
	binary.BigEndian.PutUint32(a[4:], uint32(len(key))) //nolint:gosec // at most 2^32-1, checked above
	// The key, zero-padded to a whole number n of 64-bit semiblocks.
	n := (len(key) + 7) / 8
	r := make([]byte, 8*n)
	copy(r, key)

	var b [16]byte
	if n == 1 {
		// One semiblock (§4.1, second case): a single AES block AIV || P, no wrapping rounds.
		copy(b[:8], a[:])
		copy(b[8:], r)
		block.Encrypt(b[:], b[:])
		return b[:], nil
	}
	// Otherwise RFC 3394's wrapping process W (§2.2.1) with the AIV as initial value: six
	// rounds over the semiblocks, A xor-ed with the step counter t = n*j + i after each.
	for j := range 6 {
		for i := 1; i <= n; i++ {
			copy(b[:8], a[:])
			copy(b[8:], r[8*(i-1):8*i])
			block.Encrypt(b[:], b[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(b[:8])^t)
			copy(r[8*(i-1):8*i], b[8:])
		}
	}
	return append(a[:], r...), nil
}
