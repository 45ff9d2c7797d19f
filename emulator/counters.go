package emulator

import "maps"

// Counters tell tests how the plugin used Salesforce, e.g. that a cached
// token saved a login or that a rotation read before it deployed.
type Counters struct {
	TokenRequests             int            `json:"token_requests"`
	TokensIssued              int            `json:"tokens_issued"`
	TokenErrors               map[string]int `json:"token_errors"`                // by OAuth error code
	TokenRequestsByUser       map[string]int `json:"token_requests_by_user"`      // by sub as sent (JWT) or the app's run-as username (client credentials)
	JWTTokensByIssuer         map[string]int `json:"jwt_tokens_by_issuer"`        // JWT bearer tokens issued, by the iss the assertion carried (which consumer key a client used)
	ClientCredentialsRequests int            `json:"client_credentials_requests"` // token requests with grant_type=client_credentials (also in TokenRequests)
	Revocations               int            `json:"revocations"`
	RevokeRequests            int            `json:"revoke_requests"`
	UserInfo                  int            `json:"userinfo"`
	Identity                  int            `json:"identity"`
	Limits                    int            `json:"limits"`
	ReadMetadata              int            `json:"read_metadata"`
	DeployRequests            int            `json:"deploy_requests"`
	DeployPolls               int            `json:"deploy_polls"`
	DeploysSucceeded          int            `json:"deploys_succeeded"`
	DeploysFailed             int            `json:"deploys_failed"`
	OAuthUsage                int            `json:"oauth_usage"`          // GET apps/oauth/usage
	OAuthCredentials          int            `json:"oauth_credentials"`    // GET apps/oauth/credentials/{app}[/{consumer}]
	StagedCredentials         int            `json:"staged_credentials"`   // requests under …/{consumer}/staged
	CredentialRotations       int            `json:"credential_rotations"` // successful PATCH {"command":"rotate"}
	CredentialsStaged         int            `json:"credentials_staged"`   // successful POST …/staged: new pairs made
	FaultsInjected            int            `json:"faults_injected"`
	// Connections counts the TCP connections the TLS listener accepted (Start only, not Handler):
	// a client that reuses its keep-alive connections opens none after its warm-up.
	Connections  int `json:"connections"`
	TenantSecret int `json:"tenant_secret"` // TenantSecret and Tooling Certificate requests
	Queries      int `json:"queries"`       // GET …/query (SOQL), LoginHistory reads among them
}

func newCounters() Counters {
	return Counters{TokenErrors: map[string]int{}, TokenRequestsByUser: map[string]int{}, JWTTokensByIssuer: map[string]int{}}
}

// Counters returns a copy of the counters.
func (e *Emulator) Counters() Counters {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.counters
	c.TokenErrors = maps.Clone(c.TokenErrors)
	c.TokenRequestsByUser = maps.Clone(c.TokenRequestsByUser)
	c.JWTTokensByIssuer = maps.Clone(c.JWTTokensByIssuer)
	return c
}

// ResetCounters zeroes every counter.
func (e *Emulator) ResetCounters() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.counters = newCounters()
}

func (e *Emulator) count(f func(c *Counters)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(&e.counters)
}
