package replay

import (
	"strings"
	"testing"
)

// replayLines are the input formats of vigil replay, valid and broken: the
// table test's cases and the fuzz target's seeds.
var replayLines = []struct {
	name, line string
	err        string // "" when the line is taken
}{
	{"record", `{"time":"2026-11-27T10:00:01Z","method":"GET","authority":"shop.example.com","path":"/shopapi-bid/order/1","status":200,"client_ip":"10.0.0.1","request_headers":{"authorization":"Bearer tok-1","user-agent":"app"},"request_bytes":0,"response_bytes":512,"duration_ms":12}`, ""},
	{"record without response", `{"time":"2026-11-27T10:00:01Z","method":"GET","path":"/a","status":0,"client_ip":"10.0.0.1"}`, ""},
	{"access log", `{"time":"2026-11-27T10:50:00.5Z","request_id":"r1","client":"203.0.113.9","method":"GET","authority":"shop.example.com","path":"/shopapi-bid/admin1","user_agent":"gobuster","status":404,"details":"via_upstream","flags":"-","bytes_in":0,"bytes_out":"19","duration_ms":1,"upstream":"127.0.0.1:8080"}`, ""},
	{"access log, reset", `{"time":"2026-11-27T10:50:00Z","client":"203.0.113.9","method":"POST","path":"/x","status":"0","bytes_in":"-","bytes_out":"-","duration_ms":"-"}`, ""},
	{"not JSON", `this is not json`, "not a JSON object"},
	{"record without path", `{"time":"2026-11-27T10:50:00Z","method":"GET"}`, "path"},
	{"record, status 600", `{"time":"2026-11-27T10:00:01Z","method":"GET","path":"/a","status":600}`, "status 600 out of range"},
	{"record, status 99", `{"time":"2026-11-27T10:00:01Z","method":"GET","path":"/a","status":99}`, "status 99 out of range"},
	{"record, negative bytes", `{"time":"2026-11-27T10:00:01Z","method":"GET","path":"/a","status":200,"response_bytes":-1}`, "response bytes -1 are negative"},
	{"access log, status -5", `{"time":"2026-11-27T10:50:00Z","client":"203.0.113.9","method":"GET","path":"/a","status":-5}`, "status -5 out of range"},
	{"access log, status 99999999999", `{"time":"2026-11-27T10:50:00Z","client":"203.0.113.9","method":"GET","path":"/a","status":99999999999}`, "status 99999999999 out of range"},
	{"access log, status 1000", `{"time":"2026-11-27T10:50:00Z","client":"203.0.113.9","method":"GET","path":"/a","status":"1000"}`, "status 1000 out of range"},
	{"access log, negative bytes in", `{"time":"2026-11-27T10:50:00Z","client":"203.0.113.9","method":"GET","path":"/a","status":200,"bytes_in":-7}`, "request bytes -7 are negative"},
	{"access log, negative bytes out", `{"time":"2026-11-27T10:50:00Z","client":"203.0.113.9","method":"GET","path":"/a","status":200,"bytes_out":"-19"}`, "response bytes -19 are negative"},
	{"access log, negative duration", `{"time":"2026-11-27T10:50:00Z","client":"203.0.113.9","method":"GET","path":"/a","status":200,"duration_ms":-3}`, "duration -3 ms"},
	{"access log, NaN duration", `{"time":"2026-11-27T10:50:00Z","client":"203.0.113.9","method":"GET","path":"/a","status":200,"duration_ms":"NaN"}`, "duration NaN ms"},
	{"access log, bad time", `{"time":"yesterday","client":"203.0.113.9","method":"GET","path":"/a","status":200}`, "not RFC 3339"},
	{"record, time before 1970", `{"time":"1969-12-31T23:59:59Z","method":"GET","path":"/a","status":200}`, "out of range"},
	{"access log, year 9999", `{"time":"9999-12-31T23:59:59Z","client":"203.0.113.9","method":"GET","path":"/a","status":200}`, "out of range"},
	{"access log without path", `{"time":"2026-11-27T10:50:00Z","client":"203.0.113.9","method":"GET","status":200}`, "without method or path"},
}

// TestReplayLinesValidatedAlike: an access log line is held to what the
// record format takes: a status a response can have, byte counts and a
// duration that are not negative.
func TestReplayLinesValidatedAlike(t *testing.T) {
	for _, tc := range replayLines {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseReplayLine([]byte(tc.line))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.err != "" && err == nil:
				t.Fatalf("taken as %+v, want an error with %q", r, tc.err)
			case tc.err != "" && !strings.Contains(err.Error(), tc.err):
				t.Fatalf("error %q, want one with %q", err, tc.err)
			}
		})
	}
}
