package cli

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// The commands are tested against a real server run in the test by
// test/vigiltest.

// listBody is GET /v1/{list} decoded loosely, so that the field names are
// checked as sent.
type listBody struct {
	Entries []map[string]any `json:"entries"`
}

func getList(t *testing.T, c *adminapi.Client, list string) listBody {
	t.Helper()
	code, body := vigiltest.Call(t, c, http.MethodGet, "/v1/"+list, "")
	var lb listBody
	if code != http.StatusOK || json.Unmarshal([]byte(body), &lb) != nil || lb.Entries == nil {
		t.Fatalf("GET /v1/%s: %d %s", list, code, body)
	}
	return lb
}
