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

// spikes set exactly one feature far outside the benign range; the rest of
// the vector stays benign. They feed the Explain tests and measure how well
// the forest sees an anomaly confined to one feature of twelve.
var spikes = [numFeatures]func(p *population) float64{
	fRate:         func(p *population) float64 { return 3000 * p.lognormal(0, 0.3) },
	fErrRatio:     func(p *population) float64 { return 0.9 + 0.1*p.r.Float64() },
	fEndpoints:    func(p *population) float64 { return 300 * p.lognormal(0, 0.3) },
	fKiBOut:       func(p *population) float64 { return 1e6 * p.lognormal(0, 0.5) },
	fIPs:          func(p *population) float64 { return 60 * p.lognormal(0, 0.3) },
	fAuthFail:     func(p *population) float64 { return 200 * p.lognormal(0, 0.3) },
	fUserAgents:   func(p *population) float64 { return 40 * p.lognormal(0, 0.3) },
	fObjectIDs:    func(p *population) float64 { return 20000 * p.lognormal(0, 0.3) },
	fWriteRatio:   func(p *population) float64 { return 1 },
	fNotFound:     func(p *population) float64 { return 800 * p.lognormal(0, 0.3) },
	fSessions:     func(p *population) float64 { return 80 * p.lognormal(0, 0.3) },
	fNewEndpoints: func(p *population) float64 { return 150 * p.lognormal(0, 0.3) },
}

// spike draws a benign identity and spikes feature k.
func (p *population) spike(k int) []float64 {
	x := p.benign()
	x[k] = spikes[k](p)
	return x
}

// attacks start from a benign identity and move the variables the attack
// moves (two or three; single-feature anomalies are the spikes) far outside the
// range of the whole benign population. (An identity that merely multiplies
// its own usual rate into the range of heavy users is not a population
// outlier; this detector does not model per-identity baselines.)
var attacks = []struct {
	name  string
	apply func(p *population, x []float64)
}{
	{"flood", func(p *population, x []float64) {
		x[fRate] = 3000 * p.lognormal(0, 0.3)
		x[fKiBOut] = x[fRate] * 5 * 4 * p.lognormal(0, 0.7)
	}},
	{"fuzzing", func(p *population, x []float64) {
		x[fErrRatio] = 0.9 + 0.1*p.r.Float64()
		x[fNotFound] = 100 * p.lognormal(0, 0.5)
		x[fEndpoints] = 50 * p.lognormal(0, 0.3)
	}},
	{"bulk export", func(p *population, x []float64) {
		x[fKiBOut] = 1e6 * p.lognormal(0, 0.5)
		x[fObjectIDs] = 20000 * p.lognormal(0, 0.3)
	}},
	{"shared token", func(p *population, x []float64) {
		x[fIPs] = 60 * p.lognormal(0, 0.3)
		x[fUserAgents] = 10 * p.lognormal(0, 0.3)
		x[fSessions] = 20 * p.lognormal(0, 0.3)
	}},
	{"brute force", func(p *population, x []float64) {
		x[fAuthFail] = 200 * p.lognormal(0, 0.3)
		x[fErrRatio] = 0.8 + 0.2*p.r.Float64()
	}},
	{"id walking", func(p *population, x []float64) {
		x[fRate] = 200 * p.lognormal(0, 0.3)
		x[fObjectIDs] = 20000 * p.lognormal(0, 0.3)
	}},
	{"mass delete", func(p *population, x []float64) {
		x[fWriteRatio] = 1
		x[fRate] = 100 * p.lognormal(0, 0.3)
		x[fObjectIDs] = x[fRate] * 5
	}},
	{"scraping", func(p *population, x []float64) {
		x[fRate] = 500 * p.lognormal(0, 0.3)
		x[fKiBOut] = x[fRate] * 5 * 4 * p.lognormal(0, 0.7)
		x[fObjectIDs] = x[fRate] * 5 * 0.9
	}},
	{"credential stuffing", func(p *population, x []float64) {
		x[fAuthFail] = 100 * p.lognormal(0, 0.5)
		x[fIPs] = 30 * p.lognormal(0, 0.5)
		x[fErrRatio] = 0.7
	}},
	{"enumeration", func(p *population, x []float64) {
		x[fNotFound] = 300 * p.lognormal(0, 0.5)
		x[fEndpoints] = 80 * p.lognormal(0, 0.5)
		x[fNewEndpoints] = 60 * p.lognormal(0, 0.5)
	}},
}

// attack draws one identity under attack kind.
func (p *population) attack(kind int) []float64 {
	x := p.benign()
	attacks[kind].apply(p, x)
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
