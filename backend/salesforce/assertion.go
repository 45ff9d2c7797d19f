package salesforce

import (
	"crypto/rsa"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// AssertionLifetime is how far ahead the assertion's exp is set. Salesforce documents
// "within 3 minutes"; the assertion is used at once, so a short life costs nothing.
const AssertionLifetime = 3 * time.Minute

// Claims are what Salesforce reads from a JWT bearer assertion.
type Claims struct {
	Issuer   string // the app's consumer key
	Subject  string // the Salesforce username
	Audience string // login/test URL, My Domain or site URL
}

// SignAssertion makes the RS256 JWT that Salesforce exchanges for an access token.
func SignAssertion(key *rsa.PrivateKey, c Claims, now time.Time) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": c.Issuer,
		"sub": c.Subject,
		"aud": c.Audience,
		"iat": now.Unix(),
		"exp": now.Add(AssertionLifetime).Unix(),
	})
	return tok.SignedString(key)
}
