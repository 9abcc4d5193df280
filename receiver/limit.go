package receiver

import (
	"sync"
	"time"
)

// failLimiter counts failed authentications per remote address, as a token
// bucket: burst failures at once, then one per every. An address that has
// used them up is refused without its token being looked at, until the
// bucket refills.
type failLimiter struct {
	burst int
	every time.Duration

	mu  sync.Mutex
	ips map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxTracked bounds the addresses remembered; refilled ones are forgotten
// first.
const maxTracked = 4096

// fill brings b up to date at now.
func (l *failLimiter) fill(b *bucket, now time.Time) {
	b.tokens = min(float64(l.burst), b.tokens+float64(now.Sub(b.at))/float64(l.every))
	b.at = now
}

// blocked returns how long ip must still wait, or 0 if it may try.
func (l *failLimiter) blocked(ip string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.ips[ip]
	if b == nil {
		return 0
	}
	l.fill(b, now)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(l.every))
}

// fail records a failure of ip and returns how many more it may have
// before it is blocked.
func (l *failLimiter) fail(ip string, now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ips == nil {
		l.ips = map[string]*bucket{}
	}
	b := l.ips[ip]
	if b == nil {
		if len(l.ips) >= maxTracked {
			l.prune(now)
		}
		b = &bucket{tokens: float64(l.burst), at: now}
		l.ips[ip] = b
	}
	l.fill(b, now)
	b.tokens = max(b.tokens-1, 0)
	return int(b.tokens)
}

// prune forgets the addresses whose bucket is full again, or, if none is,
// the one closest to full.
func (l *failLimiter) prune(now time.Time) {
	var fullest string
	for ip, b := range l.ips {
		l.fill(b, now)
		if b.tokens >= float64(l.burst) {
			delete(l.ips, ip)
		} else if fullest == "" || b.tokens > l.ips[fullest].tokens {
			fullest = ip
		}
	}
	if len(l.ips) >= maxTracked {
		delete(l.ips, fullest)
	}
}
