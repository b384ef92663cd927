package smoke

import "encoding/base64"

func mustB64(s string) []byte { return []byte(base64.StdEncoding.EncodeToString([]byte(s))) }
