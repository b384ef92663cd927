package demo

import "github.com/vigil-project/vigil/server/demo/shop"

// The sample shop lives in server/demo/shop (its API model, shared with
// test/scenario, and its handler); these names are the ones `vigil demo`
// and `vigil shop` use.
type Shop = shop.Shop

// NewShop builds the shop's data from seed; see [shop.NewShop].
func NewShop(seed uint64) *Shop { return shop.NewShop(seed) }

// BasePath is where the sample API lives.
const BasePath = shop.BasePath

// NumUsers is the number of demo accounts (user1 … user200).
const NumUsers = shop.NumUsers
