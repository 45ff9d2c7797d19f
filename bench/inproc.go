package bench

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// InProc holds `go test -bench` results (benchstat's input format), by benchmark name without
// the -GOMAXPROCS suffix, then by unit (ns/op, B/op, storage-calls/op, …), one value per -count
// run.
type InProc struct {
	Files  []string
	CPU    string
	Values map[string]map[string][]float64
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// ReadInProc parses the files (a missing file is skipped: the report then says not run).
func ReadInProc(paths ...string) (*InProc, error) {
	r := &InProc{Values: map[string]map[string][]float64{}}
	for _, p := range paths {
		if p == "" {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, err
		}
		r.Files = append(r.Files, p)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "cpu: ") {
				r.CPU = strings.TrimSpace(strings.TrimPrefix(line, "cpu: "))
			}
			m := benchLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			fields := strings.Fields(m[2])
			for i := 0; i+1 < len(fields); i += 2 {
				v, err := strconv.ParseFloat(fields[i], 64)
				if err != nil {
					continue
				}
				if r.Values[m[1]] == nil {
					r.Values[m[1]] = map[string][]float64{}
				}
				r.Values[m[1]][fields[i+1]] = append(r.Values[m[1]][fields[i+1]], v)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Median is the median of a benchmark's values in unit, and how many runs it had (0: not run).
func (r *InProc) Median(name, unit string) (float64, int) {
	if r == nil {
		return 0, 0
	}
	xs := r.Values[name][unit]
	if len(xs) == 0 {
		return 0, 0
	}
	return Median(xs), len(xs)
}
