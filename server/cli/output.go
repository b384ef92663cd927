package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server/adminapi"
)

// row writes one line of a table: the cells, each made printable, separated
// by tabs (the tabwriter's columns).
func row(w io.Writer, cells ...string) {
	for i, c := range cells {
		if i > 0 {
			io.WriteString(w, "\t")
		}
		io.WriteString(w, adminapi.Printable(c))
	}
	io.WriteString(w, "\n")
}

// shortValue shortens a fingerprint for a table: fp:0123abcd….
func shortValue(v string) string {
	if detect.IsFingerprint(v) {
		return v[:len(detect.FingerprintPrefix)+8] + "…"
	}
	return v
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// fmtNum prints a number with at most two decimals and no exponent.
func fmtNum(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

type countKV struct {
	k string
	n int64
}

func sorted(m map[string]int64) []countKV {
	out := make([]countKV, 0, len(m))
	for k, n := range m {
		out = append(out, countKV{k, n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n > out[j].n || out[i].n == out[j].n && out[i].k < out[j].k })
	return out
}

// counts renders the top n of a count map as "A 27, B 3".
func counts(m map[string]int64, n int) string {
	s := ""
	for i, kv := range sorted(m) {
		if i == n {
			s += ", …"
			break
		}
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", kv.k, kv.n)
	}
	return s
}
