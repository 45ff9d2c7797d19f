// Package emulator imitates the parts of Salesforce that the Vault plugin
// talks to: the OAuth 2.0 token endpoint (JWT bearer and client credentials
// grants), revoke, userinfo, the identity URL, the REST limits resource, the
// Metadata API calls used to rotate an app's certificate and the Connect
// REST staged credentials API used to rotate an External Client App's
// consumer key and secret. It checks what Salesforce checks (see
// shared/docs/salesforce-protocol.md) and answers with Salesforce's status
// codes and bodies, so the plugin's error handling is exercised for real.
//
// It serves HTTPS on loopback with its own CA, can be driven in process
// (Go API) or as a separate process (the /__emulator/ admin API), and takes
// injected faults for reliability tests.
package emulator

import (
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Config tunes the emulator. The zero value behaves like Salesforce.
type Config struct {
	// Clock is the emulator's notion of now; nil means time.Now. Tests inject
	// a fake clock to walk through expiry, idle timeout and propagation.
	Clock func() time.Time
	// ExpSkew is the clock-skew allowance on the assertion's exp: an exp at or
	// before now-ExpSkew is expired. 0 means the default of 3 minutes;
	// negative means no allowance.
	ExpSkew time.Duration
	// MaxAssertionLifetime: 0 means no upper bound on exp (Salesforce's real
	// behaviour); >0 rejects an exp later than now+MaxAssertionLifetime.
	MaxAssertionLifetime time.Duration
	// LoginRateLimit is the number of logins per user per rolling hour.
	// 0 means the Salesforce default of 3600; negative means unlimited.
	LoginRateLimit int
	// PropagationDelay is how long a changed app certificate takes to take
	// effect everywhere (Salesforce says 2-10 minutes). Default 0.
	PropagationDelay time.Duration
	// PropagationOverlap picks which certificates validate during the delay:
	// "old" (default), "both" or "new".
	PropagationOverlap string
	// IncludeIssuedAtAndSignature adds issued_at and signature to token
	// responses (other flows return them; for JWT bearer it is uncertain).
	IncludeIssuedAtAndSignature bool
	// LoginHosts are the host names (compared case-insensitively, without the
	// port) of Salesforce's login servers, where the client credentials grant
	// is refused with "request not supported on this domain". nil means
	// login.salesforce.com and test.salesforce.com; tests that send a Host
	// header such as "login.localhost" list it here. An empty non-nil slice
	// refuses nowhere.
	LoginHosts []string
	// StagedCredentialLifetime is how long staged consumer credentials, and the
	// previous pair after a rotation, stay valid. 0 means Salesforce's 30 days.
	StagedCredentialLifetime time.Duration
	// TenantSecretMinInterval, when positive, replaces Salesforce's per-type minimum time
	// between two tenant secret uploads (TenantSecretMinInterval table): end-to-end tests,
	// which cannot move a real emulator's clock, rotate twice within it. 0 means the table.
	TenantSecretMinInterval time.Duration
	// DeployPolls is how many status polls a deploy reports InProgress
	// before it finishes. 0 means the default of 1; negative means 0.
	DeployPolls int
	// Logf receives one line per request and event; nil means silent.
	Logf func(format string, args ...any)
}

// Emulator is one emulated Salesforce. All methods are safe for concurrent use.
type Emulator struct {
	cfg     Config
	ca      *authority
	handler http.Handler

	// mu guards everything below. One lock keeps the state consistent
	// (a token check reads app, org, user and sessions together); no work
	// that can block (crypto, I/O, sleeps) is done while holding it.
	mu       sync.Mutex
	orgs     map[string]*Org // by 18-char ID
	orgOrder []string
	users    map[string]*User // by lower-case username (usernames are global in Salesforce)
	apps     map[string]*appState
	appOrder []string // consumer keys, in insertion order
	sessions map[string]*session
	logins   map[string][]time.Time // successful logins per user ID, for the rate limit
	apiCalls map[string]int         // REST calls per org, for DailyApiRequests
	history  []loginRecord          // LoginHistory rows, oldest first (login_history.go)
	deploys  map[string]*deployJob
	faults   []*faultState
	counters Counters
	byok     *byokState // BYOK certificates and tenant secrets, made on first use

	srvMu     sync.Mutex
	srv       *http.Server
	ln        net.Listener
	url       string
	done      chan struct{}
	closeOnce sync.Once
}

// New returns an emulator with no orgs, users or apps. It creates the CA and
// the server certificate right away, so CACertPEM works before Start.
func New(cfg Config) *Emulator {
	if cfg.ExpSkew == 0 {
		cfg.ExpSkew = 3 * time.Minute
	} else if cfg.ExpSkew < 0 {
		cfg.ExpSkew = 0
	}
	if cfg.LoginRateLimit == 0 {
		cfg.LoginRateLimit = 3600
	}
	switch cfg.PropagationOverlap {
	case "old", "both", "new":
	case "":
		cfg.PropagationOverlap = "old"
	default:
		if cfg.Logf != nil {
			cfg.Logf("emulator: unknown PropagationOverlap %q, using \"old\"", cfg.PropagationOverlap)
		}
		cfg.PropagationOverlap = "old"
	}
	if cfg.LoginHosts == nil {
		cfg.LoginHosts = []string{"login.salesforce.com", "test.salesforce.com"}
	} else {
		cfg.LoginHosts = slices.Clone(cfg.LoginHosts)
	}
	if cfg.StagedCredentialLifetime <= 0 {
		cfg.StagedCredentialLifetime = 30 * 24 * time.Hour
	}
	if cfg.DeployPolls == 0 {
		cfg.DeployPolls = 1
	} else if cfg.DeployPolls < 0 {
		cfg.DeployPolls = 0
	}
	ca, err := newAuthority()
	if err != nil {
		// Only a broken crypto/rand gets here; nothing sensible can follow.
		panic("emulator: creating CA: " + err.Error())
	}
	e := &Emulator{
		cfg:      cfg,
		ca:       ca,
		orgs:     map[string]*Org{},
		users:    map[string]*User{},
		apps:     map[string]*appState{},
		sessions: map[string]*session{},
		logins:   map[string][]time.Time{},
		apiCalls: map[string]int{},
		deploys:  map[string]*deployJob{},
		done:     make(chan struct{}),
	}
	e.counters = newCounters()
	e.handler = e.routes()
	return e
}

func (e *Emulator) now() time.Time {
	if e.cfg.Clock != nil {
		return e.cfg.Clock()
	}
	return time.Now()
}

func (e *Emulator) logf(format string, args ...any) {
	if e.cfg.Logf != nil {
		e.cfg.Logf(format, args...)
	}
}
