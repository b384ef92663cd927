package behaviour

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

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
// Distributed attacks from many addresses of one network (a botnet in one
// hosting range, a stuffer rotating through its provider's addresses) are
// judged per network too: every failed login and every failed call to a
// route the API does not have (or to a scanner-shaped path) also counts
// for the /24 (IPv4) or /48 (IPv6) of its address, a state of kind ip whose
// value is the range ("203.0.113.0/24"), in the network population, and
// so does every successful login (what the network's users do). Only such
// calls feed it, so a network state exists only where there is evidence,
// it measures only the credential stuffing and probing variables, and an
// attack on it blocks the range. A network is judged only once its
// evidence came from networkAddresses distinct addresses (it adds evidence
// where an attack is spread; one address's attack is that address's), and
// on its failed logins only while they outnumber its successful ones
// twice: an office or a provider's range whose many users mistype a
// password now and then logs in successfully far more often than it
// fails; a stuffer, almost never.
//
// The credentials and accounts seen from a shared address form populations
// of their own too (token_on_shared_ip, api_key_on_shared_ip,
// cookie_on_shared_ip, username_on_shared_ip): an integration's service
// account behind its site's egress address renews its token every half
// hour and calls all day, so that each of its tokens looks like a new
// session as busy as no person's; an office's people share its address
// too. Judged with people's sessions on their own addresses, they set the
// bar for tokens and accounts far above anything one person does, and an
// attacker with a stolen or fresh session keeps under it while doing many
// times a person's hour. A credential is judged in its kind's
// on_shared_ip population once it was seen from an address that was
// shared at the time (it stays there: an office's users do not move).
// The shared addresses are what the address states found (the users
// behind them), published to the model (sharedIPs) for the credentials'
// states, which other workers own.
//
// Until a derived population has minSamples samples of its own (no shared
// address in training), its thresholds are its kind's: shared addresses
// are then judged as before populations were learned, a network as one
// address, a credential on a shared address as any other.

// pop is a population: an identity kind, popSharedIP, popNetwork, or a
// credential kind's population on shared addresses (onShared).
type pop uint8

const (
	popSharedIP = pop(detect.NumKinds)
	popNetwork  = popSharedIP + 1
	// popOnShared is the first of the credentials' populations on shared
	// addresses, one per kind but ip, in kind order (onShared).
	popOnShared = popNetwork + 1
	numPops     = int(popOnShared) + int(detect.NumKinds) - 1
)

// onShared is the population of credentials or accounts of kind k (not
// ip) seen from a shared address.
func onShared(k detect.Kind) pop { return popOnShared + pop(k) - 1 }

// onSharedSuffix names the credentials' populations on shared addresses
// (token_on_shared_ip …).
const onSharedSuffix = "_on_shared_ip"

// networkVars are the variables measured on a network: the evidence that
// feeds it.
var networkVars = [numVars]bool{vLoginFailures: true, vLoginFailuresHour: true, vDistinctLoginUsers: true,
	vLoginUsersHour: true, vUnknownRoutes: true, vScannerPaths: true}

// sharedUsers is how many distinct users (tokens, cookies, API keys with a
// successful call) an address shows over the wide epoch (30 to 60
// minutes) before it is judged as a shared address.
const sharedUsers = 4

// skUsers is the sketch of the users behind an address, and skAddresses
// that of the addresses of a network: an IP state has no use for skIPs
// (the addresses of a credential).
const (
	skUsers     = skIPs
	skAddresses = skIPs
)

// skLoginUsersWide is skLoginUsers over wideEpoch, for addresses and
// networks (whose skAgents is free: only credentials count agents): a
// password sprayer trying one or two passwords per account every few
// minutes names few accounts in ten minutes and many in an hour, where
// one client's address names its own account.
const skLoginUsersWide = skAgents

// networkAddresses is how many distinct addresses a network's evidence
// must come from before the network is judged.
const networkAddresses = 3

func (p pop) String() string {
	switch p {
	case popSharedIP:
		return "ip_shared"
	case popNetwork:
		return "network"
	}
	if p >= popOnShared {
		return p.kind().String() + onSharedSuffix
	}
	return detect.Kind(p).String()
}

// parsePop reads a population's name: an identity kind, ip_shared,
// network, or a credential kind's <kind>_on_shared_ip.
func parsePop(s string) (pop, error) {
	switch s {
	case "ip_shared":
		return popSharedIP, nil
	case "network":
		return popNetwork, nil
	}
	name, shared := strings.CutSuffix(s, onSharedSuffix)
	k, err := detect.ParseKind(name)
	if err != nil || shared && k == detect.KindIP {
		return 0, fmt.Errorf("unknown population %q (an identity kind, ip_shared, network, or <kind>%s for token, api_key, cookie, username)", s, onSharedSuffix)
	}
	if shared {
		return onShared(k), nil
	}
	return pop(k), nil
}

// kind is the identity kind of a population's identities.
func (p pop) kind() detect.Kind {
	switch {
	case p >= popOnShared:
		return detect.Kind(p-popOnShared) + 1
	case p >= popSharedIP:
		return detect.KindIP
	}
	return detect.Kind(p)
}

// derived reports whether p is more than an identity kind: its thresholds
// are its kind's until it has samples of its own.
func (p pop) derived() bool { return p >= popSharedIP }

// addressJudged reports whether p's states add up unrelated clients (a
// shared address, a network): no multivariate model is fitted on them.
func (p pop) addressJudged() bool { return p == popSharedIP || p == popNetwork }

// applies reports whether variable v is measured on population p.
func applies(v varID, p pop) bool {
	if p == popNetwork {
		return networkVars[v]
	}
	return varDefs[v].kinds&(1<<p.kind()) != 0
}

// network returns the /24 (IPv4) or /48 (IPv6) range of an address, ""
// when it is none.
func network(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// isNetwork reports whether an ip state's value is a range.
func isNetwork(id string) bool { return strings.IndexByte(id, '/') >= 0 }

// evidence reports whether a call also counts for its address's network:
// a login (failed, or successful for what the network's users do), or a
// failed call to a route the API does not have or to a scanner-shaped
// path.
func evidence(t *detect.Transaction, call *callFacts) bool {
	if call.login {
		return t.Status == 401 || t.Status == 403 || t.Status >= 200 && t.Status < 400
	}
	return t.Status >= 400 && (t.Route == detect.RouteUnknown || call.scanner)
}

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
	switch {
	case s.kind != detect.KindIP && s.marks&flagOnSharedIP != 0:
		return onShared(s.kind)
	case s.kind != detect.KindIP:
		return pop(s.kind)
	case isNetwork(s.id):
		return popNetwork
	case s.users() >= sharedUsers:
		return popSharedIP
	}
	return pop(s.kind)
}

// userOf returns the user a call authenticated as, for the users behind
// its address, when the API answered it with success (a failed login's
// user name is an attempt, not a user): the account it names where it
// names one (one person, or one script, logging in again and again for a
// fresh token is one user, not an office), else its token, API key or
// cookie.
func userOf(t *detect.Transaction) string {
	if t.Status >= 400 || t.Status == 0 {
		return ""
	}
	if u := t.Identities[detect.KindUsername]; u != "" {
		return u
	}
	for _, k := range []detect.Kind{detect.KindToken, detect.KindAPIKey, detect.KindCookie} {
		if id := t.Identities[k]; id != "" {
			return id
		}
	}
	return ""
}

// spread reports whether a network state's evidence comes from enough
// addresses to judge variable v on it, and for the credential stuffing
// variables whether its failed logins outnumber its successful ones twice
// (true for every other state).
func (s *identityState) spread(p pop, v varID) bool {
	if p != popNetwork {
		return true
	}
	if s.estimate(skAddresses) < networkAddresses {
		return false
	}
	if varDefs[v].attack != detect.AttackCredentialStuffing {
		return true
	}
	failed := s.longSum(cLoginFail)
	succeeded := s.longSum(cRequests) - failed - s.longSum(cFailed) - s.longSum(cErrors)
	return failed >= 2*succeeded
}

// addressesVariable is the explanation's entry for a network: how many of
// its addresses the evidence came from.
func (s *identityState) addressesVariable() detect.VariableValue {
	n := s.estimate(skAddresses)
	return detect.VariableValue{Name: addressesVariableName, Observed: round(n), Tn: networkAddresses, Tx: networkAddresses,
		DeviationPct: deviationFrom(n, networkAddresses)}
}

// ContextVariable reports whether an explanation's variable says how the
// identity was judged (the users behind a shared address, the addresses
// of a network) rather than what it did: never the reason of an attack.
func ContextVariable(name string) bool {
	return name == usersVariableName || name == addressesVariableName || name == addressVariable ||
		name == sharedAddressVariableName
}

// The names of the context variables of shared addresses and networks.
const (
	usersVariableName     = "users_behind_address"
	addressesVariableName = "addresses_in_network"
)

// addressVariable marks an attack recorded under the credential that
// carried it while the variables explaining it are its address's (see
// carrierOf).
const addressVariable = "judged_on_address"

// usersVariable is the explanation's entry for a shared address: how many
// users it showed, against the count that makes an address shared.
func (s *identityState) usersVariable() detect.VariableValue {
	u := s.users()
	return detect.VariableValue{Name: usersVariableName, Observed: round(u), Tn: sharedUsers, Tx: sharedUsers,
		DeviationPct: deviationFrom(u, sharedUsers)}
}

// sharedIPFor is how long, in minutes, an address found shared counts as
// shared for the credentials seen from it: the users behind it are
// counted over 30 to 60 minutes.
const sharedIPFor = 60

// unixMinute is the minute of a time in unix nanoseconds.
func unixMinute(ns int64) int32 { return int32(ns / int64(time.Minute)) }

// noteSharedIP records that address ip is shared at minute (unix
// minutes), at most once every few minutes per address; now and then it
// forgets the addresses no longer shared.
func (m *apiModel) noteSharedIP(ip string, minute int32) {
	if v, ok := m.sharedIPs.Load(ip); ok && minute-v.(int32) < 5 {
		return
	}
	m.sharedIPs.Store(ip, minute)
	if m.sharedIPStores.Add(1)%1024 == 0 {
		m.sharedIPs.Range(func(k, v any) bool {
			if minute-v.(int32) > sharedIPFor {
				m.sharedIPs.Delete(k)
			}
			return true
		})
	}
}

// sharedIP reports whether address ip was found shared within the last
// sharedIPFor minutes of minute.
func (m *apiModel) sharedIP(ip string, minute int32) bool {
	v, ok := m.sharedIPs.Load(ip)
	return ok && minute-v.(int32) <= sharedIPFor
}

// sharedAddressVariable is the explanation's entry for a credential or
// account judged in its kind's population on shared addresses.
func sharedAddressVariable() detect.VariableValue {
	return detect.VariableValue{Name: sharedAddressVariableName, Observed: 1, Tn: 1, Tx: 1}
}

// sharedAddressVariableName marks an explanation of a credential or
// account seen from a shared address (judged in <kind>_on_shared_ip).
const sharedAddressVariableName = "on_shared_address"
