package inspect_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect/inspect"
)

func TestSecretParam(t *testing.T) {
	for path, want := range map[string]bool{
		"body.password": true, "body.user.Password": true, "query.pwd": true, "body.pass": true,
		"body.j_password": true, "body.client_secret": true, "query.access_token": true, "body.api_key": true,
		"body.creds[].passphrase": true, "body.otp": true, "body.card.cvv": true,
		"body.username": false, "body.email": false, "query.q": false, "body.passenger": false,
		"body.compass": false, "body.pinned": false, "": false,
	} {
		if got := inspect.SecretParam([]byte(path)); got != want {
			t.Errorf("SecretParam(%q) = %v, want %v", path, got, want)
		}
	}
}

// TestPasswordsAreNeverKept: a login's password, however often repeated,
// is no learned enum (exported profiles hold none of its values), and a
// finding on it shows no excerpt of it.
func TestPasswordsAreNeverKept(t *testing.T) {
	const pw = "hunter2-pw"
	in := inspect.New(inspect.Config{})
	l := inspect.NewLearner(in, inspect.LearnConfig{})
	train(l, "/login", 400, 20, 2*time.Hour, func(i int) *inspect.RequestView {
		return &inspect.RequestView{Method: "POST", Path: "/login", ContentType: "application/json",
			Body: fmt.Appendf(nil, `{"username":"u%d","password":"%s","remember":"%v"}`, i%3, pw, i%2 == 0)}
	})
	doc, err := json.Marshal(l.Model())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(doc), pw) {
		t.Fatalf("the password is in the learned model: %s", doc)
	}
	if !strings.Contains(string(doc), `"u1"`) {
		t.Fatalf("a user name's enum is not learned: %s", doc)
	}
	f := in.Request(&inspect.RequestView{Method: "POST", Path: "/login", ContentType: "application/json",
		Body: []byte(`{"username":"a","password":"x' OR '1'='1' --"}`)}, nil)
	if f.Kind != inspect.SQLInjection || f.KeyPath() != "body.password" || strings.Contains(f.Excerpt(), "OR") {
		t.Fatalf("finding %v at %s, excerpt %q", f.Kind, f.KeyPath(), f.Excerpt())
	}
}
