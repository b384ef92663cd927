package anomaly

import (
	"math"
	"math/rand/v2"
)

// The synthetic population: one vector per identity and 5-minute window of
// one API. Values are non-negative, heavy-tailed and often zero.
const (
	fRate         = iota // requests per minute
	fErrRatio            // share of 4xx/5xx responses
	fEndpoints           // distinct endpoint templates
	fKiBOut              // response KiB
	fIPs                 // distinct client IPs
	fAuthFail            // failed logins
	fUserAgents          // distinct user agents
	fObjectIDs           // distinct object IDs
	fWriteRatio          // share of POST/PUT/DELETE
	fNotFound            // 404 responses
	fSessions            // distinct sessions
	fNewEndpoints        // endpoints this identity never used before
	numFeatures
)

var featureNames = []string{
	"rate", "err_ratio", "endpoints", "kib_out", "ips", "auth_fail",
	"user_agents", "object_ids", "write_ratio", "not_found", "sessions", "new_endpoints",
}

// population draws identities from fixed seeds so every test sees the same data.
type population struct{ r *rand.Rand }

func newPopulation(seed uint64) *population {
	return &population{r: rand.New(rand.NewPCG(seed, 7))}
}

func (p *population) lognormal(mu, sigma float64) float64 {
	return math.Exp(mu + sigma*p.r.NormFloat64())
}

// poisson samples Poisson(λ): Knuth's method for small λ, a rounded normal
// approximation above.
func (p *population) poisson(lambda float64) float64 {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		return math.Max(0, math.Round(lambda+math.Sqrt(lambda)*p.r.NormFloat64()))
	}
	l, k, prod := math.Exp(-lambda), 0.0, 1.0
	for {
		prod *= p.r.Float64()
		if prod <= l {
			return k
		}
		k++
	}
}

// benign draws one normal identity: 70% light users, 25% heavy users, 5%
// service accounts (high rate, few endpoints, one IP, one agent).
func (p *population) benign() []float64 {
	x := make([]float64, numFeatures)
	u := p.r.Float64()
	var rate, endpointSpread float64
	service := false
	switch {
	case u < 0.70:
		rate, endpointSpread = p.lognormal(-0.5, 1), 1.5
	case u < 0.95:
		rate, endpointSpread = p.lognormal(2.5, 0.8), 2.5
	default:
		rate, endpointSpread, service = p.lognormal(4, 0.5), 0.3, true
	}
	n := math.Max(1, p.poisson(rate*5)) // requests in the window
	x[fRate] = n / 5
	pErr := math.Min(1, 0.02*p.lognormal(0, 0.8))
	x[fErrRatio] = math.Min(n, p.poisson(n*pErr)) / n
	x[fEndpoints] = math.Min(n, 1+p.poisson(endpointSpread*math.Log1p(n)))
	x[fKiBOut] = n * 4 * p.lognormal(0, 0.7)
	x[fIPs] = 1 + p.poisson(0.2)
	x[fAuthFail] = p.poisson(0.05)
	x[fUserAgents] = 1 + p.poisson(0.1)
	x[fObjectIDs] = math.Min(n, p.poisson(0.3*n))
	x[fWriteRatio] = 0.5 * p.r.Float64() * p.r.Float64()
	x[fNotFound] = p.poisson(0.01 * n)
	x[fSessions] = 1 + p.poisson(0.3)
	x[fNewEndpoints] = p.poisson(0.1)
	if service {
		x[fIPs], x[fUserAgents], x[fSessions] = 1, 1, 1
	}
	return x
}

func (p *population) benignN(n int) [][]float64 {
	xs := make([][]float64, n)
	for i := range xs {
		xs[i] = p.benign()
	}
	return xs
}

// outlierKinds are attacks that leave clear marks; each starts from a benign
// identity and overwrites some features. The single-feature kinds feed the
// Explain test: feature is the one that was changed.
var outlierKinds = []struct {
	name    string
	feature int // the only changed feature, or -1 for several
	apply   func(p *population, x []float64)
}{
	{"flood", fRate, func(p *population, x []float64) { x[fRate] = 3000 * p.lognormal(0, 0.3) }},
	{"probing errors", fErrRatio, func(p *population, x []float64) { x[fErrRatio] = 0.9 + 0.1*p.r.Float64() }},
	{"endpoint sweep", fEndpoints, func(p *population, x []float64) { x[fEndpoints] = 300 * p.lognormal(0, 0.3) }},
	{"exfiltration", fKiBOut, func(p *population, x []float64) { x[fKiBOut] = 1e6 * p.lognormal(0, 0.5) }},
	{"shared token", fIPs, func(p *population, x []float64) { x[fIPs] = 60 * p.lognormal(0, 0.3) }},
	{"brute force", fAuthFail, func(p *population, x []float64) { x[fAuthFail] = 200 * p.lognormal(0, 0.3) }},
	{"agent rotation", fUserAgents, func(p *population, x []float64) { x[fUserAgents] = 40 * p.lognormal(0, 0.3) }},
	{"id walking", fObjectIDs, func(p *population, x []float64) { x[fObjectIDs] = 20000 * p.lognormal(0, 0.3) }},
	{"mass write", fWriteRatio, func(p *population, x []float64) { x[fWriteRatio] = 1 }},
	{"404 scan", fNotFound, func(p *population, x []float64) { x[fNotFound] = 800 * p.lognormal(0, 0.3) }},
	{"session churn", fSessions, func(p *population, x []float64) { x[fSessions] = 80 * p.lognormal(0, 0.3) }},
	{"new surface", fNewEndpoints, func(p *population, x []float64) { x[fNewEndpoints] = 150 * p.lognormal(0, 0.3) }},
	{"scraping", -1, func(p *population, x []float64) {
		x[fRate] *= 30
		x[fKiBOut] *= 30
		x[fObjectIDs] = x[fRate] * 5 * 0.9
	}},
	{"credential stuffing", -1, func(p *population, x []float64) {
		x[fAuthFail] = 100 * p.lognormal(0, 0.5)
		x[fIPs] = 30 * p.lognormal(0, 0.5)
		x[fErrRatio] = 0.7
	}},
	{"enumeration", -1, func(p *population, x []float64) {
		x[fNotFound] = 300 * p.lognormal(0, 0.5)
		x[fEndpoints] = 80 * p.lognormal(0, 0.5)
		x[fNewEndpoints] = 60 * p.lognormal(0, 0.5)
	}},
}

// outlier draws one identity of the given kind.
func (p *population) outlier(kind int) []float64 {
	x := p.benign()
	outlierKinds[kind].apply(p, x)
	return x
}

// auc is the area under the ROC curve for "outliers score higher than
// benign", computed as the Mann–Whitney statistic with ties counted half.
func auc(benign, outliers []float64) float64 {
	var wins float64
	for _, o := range outliers {
		for _, b := range benign {
			switch {
			case o > b:
				wins++
			case o == b:
				wins += 0.5
			}
		}
	}
	return wins / float64(len(benign)*len(outliers))
}
