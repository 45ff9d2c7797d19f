package emulator

import (
	"crypto/aes"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/binary"
)

// CKM_RSA_AES_KEY_WRAP (PKCS#11 v2.40 §2.1.21), the wrapping Salesforce asks for SearchIndex
// and Database tenant secrets (protocol §10): the sender makes an ephemeral AES key, wraps it
// with RSA-OAEP under the BYOK certificate, wraps the secret with that AES key by AES Key Wrap
// with Padding (RFC 5649, CKM_AES_KEY_WRAP_PAD), and sends the two concatenated, RSA part
// first. This is the receiving side, written from the RFC independently of the plugin's
// wrapping code (backend/keyutil); both are checked against RFC 5649's vectors.

// rsaAESKeyWrapAESKeyBytes is the ephemeral key size the emulator accepts: AES-256 [U].
const rsaAESKeyWrapAESKeyBytes = 32

// unwrapRSAAES opens a CKM_RSA_AES_KEY_WRAP value with the certificate's private key. The
// RSA part is exactly the modulus long; the OAEP paddings are those unwrapOAEP accepts.
func unwrapRSAAES(priv *rsa.PrivateKey, wrapped []byte) ([]byte, bool) {
	k := priv.Size()
	if len(wrapped) <= k {
		return nil, false
	}
	aesKey, ok := unwrapOAEP(priv, wrapped[:k])
	if !ok || len(aesKey) != rsaAESKeyWrapAESKeyBytes {
		return nil, false
	}
	defer clear(aesKey)
	return unwrapKeyWithPadding(aesKey, wrapped[k:])
}

// unwrapKeyWithPadding is RFC 5649 §4.2: AES Key Unwrap with Padding. It refuses (false) a
// value whose integrity check fails: the AIV's constant, a length indicator outside the last
// semiblock, or non-zero padding.
func unwrapKeyWithPadding(kek, wrapped []byte) ([]byte, bool) {
	block, err := aes.NewCipher(kek)
	if err != nil || len(wrapped) < 16 || len(wrapped)%8 != 0 {
		return nil, false
	}
	n := len(wrapped)/8 - 1 // semiblocks of the padded key
	var a [8]byte
	r := make([]byte, 8*n)
	var b [16]byte
	if n == 1 {
		// One AES block held AIV || P.
		block.Decrypt(b[:], wrapped)
		copy(a[:], b[:8])
		copy(r, b[8:])
	} else {
		// RFC 3394's unwrapping process W⁻¹ (§2.2.2), the rounds of W backwards.
		copy(a[:], wrapped[:8])
		copy(r, wrapped[8:])
		for j := 5; j >= 0; j-- {
			for i := n; i >= 1; i-- {
				t := uint64(n*j + i) //nolint:gosec // n, i >= 1 and j >= 0: never negative
				binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(a[:])^t)
				copy(b[8:], r[8*(i-1):8*i])
				block.Decrypt(b[:], b[:])
				copy(a[:], b[:8])
				copy(r[8*(i-1):8*i], b[8:])
			}
		}
	}
	// The integrity check of §3: A = A65959A6 || MLI with 8(n-1) < MLI <= 8n, then zeros.
	mli := int(binary.BigEndian.Uint32(a[4:]))
	if binary.BigEndian.Uint32(a[:4]) != 0xA65959A6 || mli <= 8*(n-1) || mli > 8*n {
		return nil, false
	}
	if subtle.ConstantTimeCompare(r[mli:], make([]byte, 8*n-mli)) != 1 {
		return nil, false
	}
	return r[:mli], true
}
