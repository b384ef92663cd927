package inspect

import "bytes"

// secretWords name parameters that carry credentials (password, pwd,
// client_secret, access_token, api_key, …), compared without ASCII case
// anywhere in the key path's last segment; secretNames, whole segments.
var (
	secretWords = [...][]byte{[]byte("password"), []byte("passwd"), []byte("passphrase"), []byte("pwd"), []byte("secret"),
		[]byte("token"), []byte("apikey"), []byte("api_key"), []byte("api-key"), []byte("credential"), []byte("private_key")}
	secretNames = [...][]byte{[]byte("pass"), []byte("pw"), []byte("otp"), []byte("pin"), []byte("cvv"), []byte("cvc"), []byte("auth")}
)

// SecretParam reports whether a key path (body.user.password, query.token,
// form.j_password[]) names a credential: its values are judged like any
// other's, but never kept, neither as a learned profile's enum nor as a
// finding's excerpt. It does not allocate.
func SecretParam(path []byte) bool {
	if i := bytes.LastIndexByte(path, '.'); i >= 0 {
		path = path[i+1:]
	}
	for len(path) >= 2 && path[len(path)-2] == '[' && path[len(path)-1] == ']' {
		path = path[:len(path)-2]
	}
	if len(path) == 0 || len(path) > 64 {
		return false
	}
	var buf [64]byte
	low := buf[:len(path)]
	for i, c := range path {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		low[i] = c
	}
	for _, w := range secretWords {
		if bytes.Contains(low, w) {
			return true
		}
	}
	for _, n := range secretNames {
		if bytes.Equal(low, n) {
			return true
		}
	}
	return false
}
