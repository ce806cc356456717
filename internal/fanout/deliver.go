package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// errStuck is why a record still running at D−M/2 fails: something it waited on ignored its
// context.
var errStuck = errors.New("deadline: still running at D−M/2 (the registry, renderer or poster ignored its context)")

// Deliver delivers a batch of records and returns one outcome per record, in order, and what the
// batch did. Records that share no topic run concurrently; a record runs only after every
// earlier record sharing one of its topics is Done (otherwise it fails with ReasonBlocked). It
// returns by about D−M/2 when ctx has a deadline D.
func (e *Engine) Deliver(ctx context.Context, recs []Record) ([]Outcome, Stats) {
	inv := e.begin(ctx)
	defer inv.end()
	outs := make([]Outcome, len(recs))
	stats := func() Stats { return inv.finishStats(len(recs), oldest(recs)) }

	// One read of every event's progress: a retried batch skips what is done.
	evKeys := make([][]string, len(recs))
	var keys []string
	for i := range recs {
		for j := range recs[i].Events {
			k := EventKey(&recs[i].Events[j])
			evKeys[i] = append(evKeys[i], k)
			keys = append(keys, k)
		}
	}
	// A record waits for the last earlier record of each of its order keys: its topics, and its
	// Keys (which cannot be mistaken for topics: they are kept apart in the map by a prefix).
	deps := make([][]dep, len(recs))
	last := map[string]int{}
	for i := range recs {
		keys := orderKeys(&recs[i])
		for _, k := range keys {
			if j, ok := last[k]; ok && j != i && !hasDep(deps[i], j) {
				deps[i] = append(deps[i], dep{j, k[2:]})
			}
		}
		for _, k := range keys {
			last[k] = i
		}
	}

	// The records that start at once have their first pages read beside the progress read.
	for i := range recs {
		if len(deps[i]) == 0 {
			for j := range recs[i].Events {
				inv.prefetch(evKeys[i][j], &recs[i].Events[j])
			}
		}
	}
	var rows map[string]Progress
	if len(keys) > 0 {
		var err error
		if rows, err = e.cfg.Registry.FanoutProgress(inv.work, keys); err != nil {
			reason := ReasonRegistry
			if inv.work.Err() != nil {
				reason = ReasonDeadline
			}
			for i := range outs {
				outs[i] = failed(reason, fmt.Errorf("read fan-out progress: %w", err))
			}
			return outs, stats()
		}
	}

	// An event with a row (resumed, done, or waiting for its parts) reads from its cursor, or
	// not at all: its prefetch is dropped.
	inv.dropPrefetch(func(k string) bool { _, ok := rows[k]; return ok })

	// Each record's result, taken under a lock: if a dependency ignores its context and a
	// record is still running at D−M/2, Deliver answers without it.
	type result struct {
		out      Outcome
		nodes    []*node
		nodeOuts []Outcome
		ok       bool
	}
	res := make([]result, len(recs))
	var rmu sync.Mutex
	closed := false
	set := func(i int, r result) {
		rmu.Lock()
		if !closed {
			r.ok = true
			res[i] = r
		}
		rmu.Unlock()
	}
	status := func(i int) Status {
		rmu.Lock()
		defer rmu.Unlock()
		return res[i].out.Status
	}
	done := make([]chan struct{}, len(recs))
	for i := range done {
		done[i] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for i := range recs {
		wg.Go(func() {
			defer close(done[i])
			for _, d := range deps[i] {
				<-done[d.rec]
				if status(d.rec) != Done {
					set(i, result{out: failed(ReasonBlocked, fmt.Errorf("not started: the earlier record %s of topic %s was not done", recs[d.rec].Seq, d.topic))})
					return
				}
			}
			if inv.stopped() {
				set(i, result{out: failed(ReasonDeadline, fmt.Errorf("deadline: not started"))})
				return
			}
			out, nodes, nodeOuts := inv.record(&recs[i], evKeys[i], rows)
			set(i, result{out: out, nodes: nodes, nodeOuts: nodeOuts})
		})
	}
	inv.await(wg.Wait)
	rmu.Lock()
	closed = true
	nodes := make([][]*node, len(recs))
	nodeOuts := make([][]Outcome, len(recs))
	for i, r := range res {
		outs[i], nodes[i], nodeOuts[i] = r.out, r.nodes, r.nodeOuts
		if !r.ok {
			outs[i] = failed(ReasonDeadline, errStuck)
		}
	}
	rmu.Unlock()
	inv.markDone(outs, nodes, nodeOuts)
	return outs, stats()
}

// dep is a record's wait for an earlier record of one of its topics.
// orderKeys are a record's order keys: "t:" and each event's topic, "k:" and each of its Keys.
func orderKeys(r *Record) []string {
	keys := make([]string, 0, len(r.Events)+len(r.Keys))
	for _, ev := range r.Events {
		keys = append(keys, "t:"+ev.Topic)
	}
	for _, k := range r.Keys {
		keys = append(keys, "k:"+k)
	}
	return keys
}

type dep struct {
	rec   int
	topic string
}

func hasDep(ds []dep, j int) bool {
	for _, d := range ds {
		if d.rec == j {
			return true
		}
	}
	return false
}

// record delivers one record's events concurrently and returns the worst outcome.
func (inv *invocation) record(r *Record, keys []string, rows map[string]Progress) (Outcome, []*node, []Outcome) {
	nodes := make([]*node, len(r.Events))
	outs := make([]Outcome, len(r.Events))
	for j := range r.Events {
		row, ok := rows[keys[j]]
		n := inv.newNode(&r.Events[j], keys[j], "", row, ok)
		n.waitParts, n.created = true, r.Created
		nodes[j] = n
	}
	inv.stats.events.Add(int64(len(nodes)))
	if len(nodes) == 1 {
		outs[0] = nodes[0].run()
		nodes[0].flush()
	} else {
		var wg sync.WaitGroup
		for j, n := range nodes {
			wg.Go(func() {
				outs[j] = n.run()
				n.flush()
			})
		}
		wg.Wait()
	}
	var out Outcome
	for _, o := range outs {
		out = worse(out, o)
	}
	return out, nodes, outs
}

// markDone writes done markers for the events that were delivered but will be delivered again:
// a DynamoDB stream resumes from the lowest reported record, so every record after it, and the
// done events of a reported record, come back. A single-page event writes no row when it
// completes, so it gets one here, and only here. With Config.MarkAll every delivered event is
// marked.
func (inv *invocation) markDone(outs []Outcome, nodes [][]*node, nodeOuts [][]Outcome) {
	first := -1
	for i, o := range outs {
		if o.Status != Done {
			first = i
			break
		}
	}
	if inv.e.cfg.MarkAll {
		first = 0
	}
	if first < 0 {
		return
	}
	var rows []Progress
	for i := first; i < len(outs); i++ {
		for j, n := range nodes[i] {
			if nodeOuts[i][j].Status == Done && !n.savedDone {
				rows = append(rows, Progress{Key: n.key, Done: true, ExpiresAt: inv.expires()})
			}
		}
	}
	if len(rows) == 0 {
		return
	}
	ctx, cancel := inv.tail()
	defer cancel()
	inv.stats.progressWrites.Add(int64(len(rows)))
	if err := inv.e.cfg.Registry.SaveFanoutProgress(ctx, rows); err != nil {
		inv.log.Warn().Err(err).Int("rows", len(rows)).Msg("mark delivered records done; a retry delivers them again")
	}
}
