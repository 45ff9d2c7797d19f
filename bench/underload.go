package bench

import (
	"sync"
	"time"
)

// Reader is one kind of concurrent reader in a measurement under load: Clients closed-loop
// workers sending Op.
type Reader struct {
	Clients int
	Op      Op
}

// UnderLoad is the readers' windows with and without an action running, by round.
type UnderLoad struct {
	Base, During []Rounds   // by reader, in the order given
	Windows      [][]Window // the windows with act, by round and reader: for the reads in a part of it
	Failed       int        // failed reads, all windows
	FailMsgs     []string   // the first few
}

// underLoad runs rounds of two windows, one without act and one with it, in an order that
// alternates per round (so neither side always comes first, after a quiet moment), with the
// readers running throughout each. A window lasts window; the one with act lasts until act has
// returned too, so every read during the action is counted. act starts after the warm-up and is
// given the window's end.
func (e *Env) underLoad(rounds int, window time.Duration, readers []Reader, act func(round int, end time.Time)) *UnderLoad {
	p := e.Plan
	u := &UnderLoad{Base: make([]Rounds, len(readers)), During: make([]Rounds, len(readers))}
	for r := 0; r < rounds; r++ {
		for _, phase := range rotate([]string{"base", "act"}, r) {
			ws := make([]Window, len(readers))
			var stop chan struct{}
			length := window
			if phase == "act" {
				stop, length = make(chan struct{}), time.Hour // ended by stop once act has returned
			}
			var wg sync.WaitGroup
			for i, rd := range readers {
				wg.Add(1)
				go func() { defer wg.Done(); ws[i] = Load(rd.Clients, p.Warm, length, rd.Op, stop) }()
			}
			if phase == "act" {
				time.Sleep(p.Warm)
				end := time.Now().Add(window)
				act(r, end)
				time.Sleep(time.Until(end))
				close(stop)
			}
			wg.Wait()
			if phase == "act" {
				u.Windows = append(u.Windows, ws)
			}
			for i, w := range ws {
				if phase == "act" {
					u.During[i] = append(u.During[i], Summarize(w))
				} else {
					u.Base[i] = append(u.Base[i], Summarize(w))
				}
				u.Failed += w.Errors
				for _, m := range w.ErrMsgs {
					if len(u.FailMsgs) < 5 {
						u.FailMsgs = append(u.FailMsgs, m)
					}
				}
			}
		}
	}
	return u
}
