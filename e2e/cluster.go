package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Cluster is a 3-node Vault cluster on Raft storage, every node on 127.0.0.1 with its own API
// and cluster ports, initialised with one unseal key share.
type Cluster struct {
	Nodes     []*Vault
	RootToken string
	UnsealKey string
	PluginSHA string
}

// clusterTimeout bounds every cluster-wide wait (elections, joins, unseals).
const clusterTimeout = 90 * time.Second

// StartCluster starts three nodes, initialises the first, unseals all three (the others join
// it through retry_join), waits until all are voters, then registers and enables the plugin on
// the leader.
func StartCluster(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	home := t.TempDir()
	pluginDir, sha := PluginDirCopy(t, cfg)
	c := &Cluster{PluginSHA: sha}

	type ports struct{ api, cluster int }
	var ps []ports
	for i := 0; i < 3; i++ {
		ps = append(ps, ports{FreePort(t), FreePort(t)})
	}
	var joins strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&joins, "  retry_join {\n    leader_api_addr = \"http://127.0.0.1:%d\"\n  }\n", p.api)
	}
	for i, p := range ps {
		name := fmt.Sprintf("node%d", i+1)
		raftDir := filepath.Join(home, "raft-"+name)
		if err := os.MkdirAll(raftDir, 0o700); err != nil {
			t.Fatal(err)
		}
		// performance_multiplier = 1: the tightest Raft timings, so elections after a step-down
		// or a kill take a second or two rather than ten. The autopilot intervals (10s by
		// default) decide how soon a joined node is promoted to voter.
		conf := fmt.Sprintf(`storage "raft" {
  path    = %q
  node_id = %q
  performance_multiplier       = 1
  autopilot_reconcile_interval = "1s"
  autopilot_update_interval    = "1s"
%s}
`, raftDir, name, joins.String()) + serverHCL(p.api, p.cluster, pluginDir, "debug")
		confPath := filepath.Join(home, name+".hcl")
		writeFile(t, confPath, conf)
		n := newVault(t, cfg, name, fmt.Sprintf("http://127.0.0.1:%d", p.api), home, "server", "-config="+confPath)
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		n.start(t)
	}

	first := c.Nodes[0]
	initResp, err := first.Client.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatalf("operator init: %v", err)
	}
	c.RootToken, c.UnsealKey = initResp.RootToken, initResp.KeysB64[0]
	for _, n := range c.Nodes {
		n.setToken(c.RootToken)
	}
	c.Unseal(t, first)
	WaitFor(t, clusterTimeout, "node1 to become active", func() error { return expectHealth(first, 200) })
	// Autopilot keeps a new node a non-voter for server_stabilization_time (10s by default); a
	// non-voter cannot take over on step-down, so shorten it for the test.
	first.Write(t, "sys/storage/raft/autopilot/configuration", map[string]any{"server_stabilization_time": "2s"})
	for _, n := range c.Nodes[1:] {
		c.Unseal(t, n)
	}
	c.WaitVoters(t, 3)
	leader := c.Leader(t)
	leader.RegisterPlugin(t, sha, cfg.PluginVersion)
	leader.EnablePlugin(t, Mount)
	t.Cleanup(func() {
		for _, n := range c.Nodes {
			n.Rec.AssertNoPrivateKey(t)
		}
	})
	return c
}

// Unseal submits the unseal key to a node until it reports unsealed. A node that joins through
// retry_join needs the key to answer the leader's challenge, and may not have fetched the
// challenge yet when the first key arrives, so the key is resubmitted.
func (c *Cluster) Unseal(t testing.TB, n *Vault) {
	t.Helper()
	WaitFor(t, clusterTimeout, n.Name+" to unseal", func() error {
		st, err := n.Client.Sys().SealStatus()
		if err != nil {
			return err
		}
		if !st.Sealed {
			return nil
		}
		if _, err := n.Client.Sys().Unseal(c.UnsealKey); err != nil {
			_, _ = n.Client.Sys().ResetUnsealProcess()
			return err
		}
		return fmt.Errorf("still sealed")
	})
}

func expectHealth(n *Vault, want int) error {
	code, err := n.HealthStatus()
	if err != nil {
		return err
	}
	if code != want {
		return fmt.Errorf("%s sys/health: HTTP %d, want %d", n.Name, code, want)
	}
	return nil
}

// WaitVoters waits until the Raft configuration lists want voters.
func (c *Cluster) WaitVoters(t testing.TB, want int) {
	t.Helper()
	WaitFor(t, clusterTimeout, fmt.Sprintf("%d Raft voters", want), func() error {
		leader, err := c.leader()
		if err != nil {
			return err
		}
		s, err := leader.Client.Logical().Read("sys/storage/raft/configuration")
		if err != nil {
			return err
		}
		if s == nil {
			return fmt.Errorf("no raft configuration")
		}
		conf, _ := s.Data["config"].(map[string]any)
		servers, _ := conf["servers"].([]any)
		voters := 0
		for _, sv := range servers {
			if m, ok := sv.(map[string]any); ok && m["voter"] == true {
				voters++
			}
		}
		if voters != want {
			return fmt.Errorf("%d voters of %d servers", voters, len(servers))
		}
		return nil
	})
}

// leader returns the only active node, if every running node agrees on it (the standbys report
// 429 and name it in sys/leader).
func (c *Cluster) leader() (*Vault, error) {
	var active, standbys []*Vault
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		code, err := n.HealthStatus()
		if err != nil {
			return nil, err
		}
		switch code {
		case 200:
			active = append(active, n)
		case 429:
			standbys = append(standbys, n)
		default:
			return nil, fmt.Errorf("%s sys/health: HTTP %d", n.Name, code)
		}
	}
	if len(active) != 1 {
		return nil, fmt.Errorf("%d active nodes", len(active))
	}
	for _, s := range standbys {
		l, err := s.Client.Sys().Leader()
		if err != nil {
			return nil, err
		}
		if l.LeaderAddress != active[0].Addr {
			return nil, fmt.Errorf("%s sees leader %q, not %s", s.Name, l.LeaderAddress, active[0].Addr)
		}
	}
	return active[0], nil
}

// Leader waits for a settled leader and returns it.
func (c *Cluster) Leader(t testing.TB) *Vault {
	t.Helper()
	var l *Vault
	WaitFor(t, clusterTimeout, "a settled leader", func() (err error) {
		l, err = c.leader()
		return err
	})
	return l
}

// Standbys returns the running nodes other than the leader.
func (c *Cluster) Standbys(t testing.TB) []*Vault {
	t.Helper()
	l := c.Leader(t)
	var out []*Vault
	for _, n := range c.Nodes {
		if n != l && n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// StepDown runs `vault operator step-down` on the leader and waits for another node to lead.
func (c *Cluster) StepDown(t testing.TB) (old, next *Vault) {
	t.Helper()
	old = c.Leader(t)
	old.CLI(t, "operator", "step-down")
	WaitFor(t, clusterTimeout, "a new leader after step-down", func() (err error) {
		next, err = c.leader()
		if err == nil && next == old {
			err = fmt.Errorf("%s still leads", old.Name)
		}
		return err
	})
	t.Logf("leader moved from %s to %s", old.Name, next.Name)
	return old, next
}

// KillNode kills a node's process group at once (a crash), plugin processes included.
func (c *Cluster) KillNode(t testing.TB, n *Vault) {
	t.Helper()
	t.Logf("killing %s (pid %d)", n.Name, n.PID())
	n.Kill()
}

// RestartNode starts a stopped node again from its Raft data and unseals it; it rejoins as a
// standby.
func (c *Cluster) RestartNode(t testing.TB, n *Vault) {
	t.Helper()
	if n.Running() {
		t.Fatalf("%s is still running", n.Name)
	}
	n.start(t)
	c.Unseal(t, n)
	c.Leader(t) // every running node agrees again
}
