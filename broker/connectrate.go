package broker

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// connectRate limits new connections per key (a client address or a
// user). It remembers at most connectKeep keys: past that, keys whose
// limiter has filled up again (as good as new) are forgotten first.
type connectRate struct {
	every rate.Limit // 0: no limit
	burst int
	mu    sync.Mutex
	lims  map[string]*rate.Limiter
}

const connectKeep = 10000

func newConnectRate(perSecond float64, burst int) *connectRate {
	return &connectRate{every: rate.Limit(perSecond), burst: max(burst, 1), lims: map[string]*rate.Limiter{}}
}

// allow takes one connection of key, or says how long until one is
// allowed.
func (c *connectRate) allow(key string) (bool, time.Duration) {
	if c.every <= 0 {
		return true, 0
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	lim, ok := c.lims[key]
	if !ok {
		if len(c.lims) >= connectKeep {
			c.forget(now)
		}
		lim = rate.NewLimiter(c.every, c.burst)
		c.lims[key] = lim
	}
	if lim.AllowN(now, 1) {
		return true, 0
	}
	wait := (1 - lim.TokensAt(now)) / float64(c.every)
	return false, time.Duration(math.Ceil(wait * float64(time.Second)))
}

// forget drops the keys whose limiter is full again, and if that is not
// enough a tenth of the rest; mu is held.
func (c *connectRate) forget(now time.Time) {
	for k, lim := range c.lims {
		if lim.TokensAt(now) >= float64(c.burst) {
			delete(c.lims, k)
		}
	}
	n := len(c.lims) / 10
	for k := range c.lims {
		if len(c.lims) < connectKeep-n {
			break
		}
		delete(c.lims, k)
	}
}
