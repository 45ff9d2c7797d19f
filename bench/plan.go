package bench

import "time"

// Plan is how much of each measurement to do. The smoke plan (CI) checks that every
// measurement works and asserts only correctness (one token request per stampede, no failed
// read); the full plan (`make bench`) takes medians over several rounds.
type Plan struct {
	Name   string
	Rounds int           // rounds of the cached-read and cold-mint comparisons
	Warm   time.Duration // per window: requests not counted, to open connections and warm caches
	Window time.Duration // per window: requests counted

	CachedClients []int // cached read: concurrent clients
	ColdClients   []int // cold mint: concurrent clients
	ReuseClients  int   // connection reuse: concurrent per_lease readers

	StampedeClients, StampedeRounds int

	RotRounds           int
	RotWindow           time.Duration
	RotCached, RotCold  int // concurrent readers during the rotation windows
	PropagationDelay    time.Duration
	RotationIdleTimeout time.Duration

	// Consumer-secret rotation under load: one rotation per round, waited to completion (its
	// overlap is the plugin's minimum, 1m, so a round lasts over a minute whatever the plan).
	CCRounds         int
	CCWindow         time.Duration // the window without rotation (the one with lasts the rotation)
	CCCached, CCCold int           // concurrent readers of the client-credentials roles
	CCIdleTimeout    time.Duration

	// Tenant-secret rotation: TSRotations back to back per round, alone and under load.
	// Salesforce holds at most 50 tenant secrets of a type: 2 × TSRounds × TSRotations stays
	// below.
	TSRounds, TSRotations int
	TSWindow              time.Duration
	TSCached              int // readers of a shared role beside the one per_lease client

	KeyRounds     int
	KeyType       string // key_type of the connection rotated under read load
	KeyCached     int    // readers of a shared role on that connection
	KeyCold       int    // readers of a per_lease role on it
	KeyBaseWindow time.Duration

	ScaleConns, ScaleRoles int
	KeyVersions            int // key versions added to measure storage per version
	ListRounds             int
	SeedWorkers            int
}

// SmokePlan runs each measurement once with tiny counts: seconds, not minutes.
func SmokePlan() Plan {
	return Plan{
		Name: "smoke", Rounds: 1, Warm: 50 * time.Millisecond, Window: 200 * time.Millisecond,
		CachedClients: []int{1, 8, 64}, ColdClients: []int{1, 8}, ReuseClients: 64,
		StampedeClients: 64, StampedeRounds: 1,
		RotRounds: 1, RotWindow: time.Second, RotCached: 2, RotCold: 2,
		PropagationDelay: 500 * time.Millisecond, RotationIdleTimeout: 60 * time.Second,
		CCRounds: 1, CCWindow: 300 * time.Millisecond, CCCached: 2, CCCold: 1, CCIdleTimeout: 150 * time.Second,
		TSRounds: 1, TSRotations: 3, TSWindow: 300 * time.Millisecond, TSCached: 2,
		KeyRounds: 1, KeyType: "rsa-2048", KeyCached: 3, KeyCold: 1, KeyBaseWindow: 300 * time.Millisecond,
		ScaleConns: 10, ScaleRoles: 50, KeyVersions: 2, ListRounds: 2, SeedWorkers: 8,
	}
}

// FullPlan is `make bench`: about ten minutes on 2 cores, and 3½ more for the consumer-secret
// rotation (three rounds, each waiting out the 1m overlap).
func FullPlan() Plan {
	return Plan{
		Name: "full", Rounds: 5, Warm: 500 * time.Millisecond, Window: 3 * time.Second,
		CachedClients: []int{1, 8, 64}, ColdClients: []int{1, 8}, ReuseClients: 64,
		StampedeClients: 64, StampedeRounds: 5,
		RotRounds: 3, RotWindow: 10 * time.Second, RotCached: 4, RotCold: 4,
		PropagationDelay: 2 * time.Second, RotationIdleTimeout: 120 * time.Second,
		CCRounds: 3, CCWindow: 10 * time.Second, CCCached: 4, CCCold: 2, CCIdleTimeout: 150 * time.Second,
		TSRounds: 5, TSRotations: 4, TSWindow: 3 * time.Second, TSCached: 4,
		KeyRounds: 5, KeyType: "rsa-4096", KeyCached: 6, KeyCold: 2, KeyBaseWindow: 2 * time.Second,
		ScaleConns: 1000, ScaleRoles: 10000, KeyVersions: 20, ListRounds: 9, SeedWorkers: 16,
	}
}
