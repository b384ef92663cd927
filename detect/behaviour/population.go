package behaviour

import (
	"fmt"

	"github.com/vigil-project/vigil/detect"
)

// Populations. An API's identities do not form one population: an
// address behind which sixty people of an office work makes sixty
// people's calls, failed logins and distinct user names, and judged
// against what one client's address does it looks like a credential
// stuffer or a flood. Thresholds are learned per population: one per
// identity kind (anonymous clients by address, browser sessions by
// cookie, apps by token, integrations by API key, accounts by user name),
// and ip_shared, the addresses behind which several users have
// authenticated lately. A shared address is judged against what shared
// addresses do; the users behind it are judged each by their own state
// (token, cookie, user name), so that an attack one of them carries is
// attributed to that user, not to the office. A shared address itself is
// flagged only when it passes what shared addresses do: the address then
// behaves like one attacker.
//
// Until ip_shared has minSamples samples of its own (no shared address in
// training), its thresholds are the ip population's: shared addresses are
// then judged as before populations were learned.

// pop is a population: an identity kind, or popSharedIP.
type pop uint8

const (
	popSharedIP = pop(detect.NumKinds)
	numPops     = int(detect.NumKinds) + 1
)

// sharedUsers is how many distinct users (tokens, cookies, API keys with a
// successful call) an address shows over the wide epoch (30 to 60
// minutes) before it is judged as a shared address.
const sharedUsers = 4

// skUsers is the sketch of the users behind an address: an IP state has
// no use for skIPs (the addresses of a credential).
const skUsers = skIPs

func (p pop) String() string {
	if p == popSharedIP {
		return "ip_shared"
	}
	return detect.Kind(p).String()
}

// parsePop reads a population's name: an identity kind or ip_shared.
func parsePop(s string) (pop, error) {
	if s == "ip_shared" {
		return popSharedIP, nil
	}
	k, err := detect.ParseKind(s)
	if err != nil {
		return 0, fmt.Errorf("%w (or ip_shared)", err)
	}
	return pop(k), nil
}

// kind is the identity kind of a population's identities.
func (p pop) kind() detect.Kind {
	if p == popSharedIP {
		return detect.KindIP
	}
	return detect.Kind(p)
}

// applies reports whether variable v is measured on population p.
func applies(v varID, p pop) bool { return varDefs[v].kinds&(1<<p.kind()) != 0 }

// users estimates the distinct users behind an address (0 for other
// kinds).
func (s *identityState) users() float64 {
	if s.kind != detect.KindIP {
		return 0
	}
	return s.estimate(skUsers)
}

// pop is the population the state is judged in.
func (s *identityState) pop() pop {
	if s.kind == detect.KindIP && s.users() >= sharedUsers {
		return popSharedIP
	}
	return pop(s.kind)
}

// userOf returns the user a call authenticated as, for the users behind
// its address: its token, API key or cookie when the API answered it with
// success (a failed login's user name is an attempt, not a user).
func userOf(t *detect.Transaction) string {
	if t.Status >= 400 || t.Status == 0 {
		return ""
	}
	for _, k := range []detect.Kind{detect.KindToken, detect.KindAPIKey, detect.KindCookie} {
		if id := t.Identities[k]; id != "" {
			return id
		}
	}
	return ""
}

// usersVariable is the explanation's entry for a shared address: how many
// users it showed, against the count that makes an address shared.
func (s *identityState) usersVariable() detect.VariableValue {
	u := s.users()
	return detect.VariableValue{Name: "users_behind_address", Observed: round(u), Tn: sharedUsers, Tx: sharedUsers,
		DeviationPct: deviationFrom(u, sharedUsers)}
}
