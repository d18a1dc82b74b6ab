/* dit_vec.h: the element-wise kernels of dit_kernels.c, written once for any
 * vector width with GCC vector extensions and included there once per
 * instruction set (4 lanes for the x86-64 baseline, 8 lanes with AVX2 and
 * FMA). Not a normal header: no include guard, and the includer defines
 *   VEC_T     the float vector type, VEC_I the int32 vector of the same size,
 *   VEC_W     its number of lanes,
 *   VEC(n)    the name n with this instantiation's suffix,
 *   VEC_ATTR  the attributes of every function (the target),
 * and undefines them after. Every element, a row's tail included (through a
 * padded vector), gets the same arithmetic whatever its position, so the
 * results do not depend on how a product was split into tiles; reductions
 * combine lanes in a fixed order. */

static inline VEC_ATTR VEC_T VEC(ld)(const float *p)
{
	VEC_T v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline VEC_ATTR void VEC(st)(float *p, VEC_T v)
{
	memcpy(p, &v, sizeof(v));
}

/* n < VEC_W floats into a vector padded with pad */
static inline VEC_ATTR VEC_T VEC(ld_part)(const float *p, int n, float pad)
{
	float t[VEC_W];

	for (int i = 0; i < VEC_W; i++)
		t[i] = i < n ? p[i] : pad;
	return VEC(ld)(t);
}

static inline VEC_ATTR void VEC(st_part)(float *p, int n, VEC_T v)
{
	float t[VEC_W];

	VEC(st)(t, v);
	memcpy(p, t, (size_t)n * sizeof(float));
}

static inline VEC_ATTR VEC_T VEC(splat)(float x)
{
	VEC_T v = {0};

	for (int i = 0; i < VEC_W; i++)
		v[i] = x;
	return v;
}

static inline VEC_ATTR VEC_T VEC(select)(VEC_I mask, VEC_T a, VEC_T b)
{
	return (VEC_T)((mask & (VEC_I)a) | (~mask & (VEC_I)b));
}

static inline VEC_ATTR VEC_T VEC(max)(VEC_T a, VEC_T b)
{
	return VEC(select)(a > b, a, b);
}

/* Lanes summed pairwise, halves first: a fixed order. */
static inline VEC_ATTR float VEC(hsum)(VEC_T v)
{
	float t[VEC_W];

	VEC(st)(t, v);
	for (int w = VEC_W / 2; w; w /= 2)
		for (int i = 0; i < w; i++)
			t[i] += t[i + w];
	return t[0];
}

static inline VEC_ATTR float VEC(hmax)(VEC_T v)
{
	float m = v[0];

	for (int i = 1; i < VEC_W; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

/* e^x: x = n ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2, the high
 * part exact for |n| < 2^15), e^r by its Taylor series to degree 7 (error
 * below 2e-9), times 2^n built in the exponent bits; x clamped to
 * [-87, 88] so that 2^n stays a normal number. */
static inline VEC_ATTR VEC_T VEC(exp)(VEC_T x)
{
	const VEC_T magic = VEC(splat)(12582912.0f); /* 1.5 * 2^23: rounds to integer */
	VEC_T lo = VEC(splat)(-87.0f), hi = VEC(splat)(88.0f), t, n, r, p;
	VEC_I e;

	x = VEC(select)(x < lo, lo, x);
	x = VEC(select)(x > hi, hi, x);
	t = x * 1.44269504088896341f + magic;
	n = t - magic;
	r = x - n * 0.693359375f;
	r = r + n * 2.12194440054690583e-4f;
	p = VEC(splat)(1.0f / 5040.0f);
	p = p * r + 1.0f / 720.0f;
	p = p * r + 1.0f / 120.0f;
	p = p * r + 1.0f / 24.0f;
	p = p * r + 1.0f / 6.0f;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	e = (__builtin_convertvector(n, VEC_I) + 127) << 23;
	return p * (VEC_T)e;
}

static inline VEC_ATTR VEC_T VEC(silu)(VEC_T x)
{
	return x / (1.0f + VEC(exp)(-x));
}

/* gelu, tanh form: 0.5 x (1 + tanh(u)) = x * sigmoid(2u),
 * u = sqrt(2/pi) (x + 0.044715 x^3). */
static inline VEC_ATTR VEC_T VEC(gelu)(VEC_T x)
{
	VEC_T u2 = x * (1.5957691216057308f + 0.0713548162726f * x * x);

	return x / (1.0f + VEC(exp)(-u2));
}

/* x[i] = silu / gelu (x[i] + b[i]) in place; b may be NULL (no bias). */
static VEC_ATTR void VEC(map_silu)(float *x, const float *b, size_t n)
{
	size_t i = 0;

	for (; i + VEC_W <= n; i += VEC_W)
		VEC(st)(x + i, VEC(silu)(b ? VEC(ld)(x + i) + VEC(ld)(b + i) : VEC(ld)(x + i)));
	if (i < n) {
		int r = (int)(n - i);
		VEC_T v = VEC(ld_part)(x + i, r, 0.0f);
		if (b)
			v += VEC(ld_part)(b + i, r, 0.0f);
		VEC(st_part)(x + i, r, VEC(silu)(v));
	}
}

static VEC_ATTR void VEC(map_gelu)(float *x, const float *b, size_t n)
{
	size_t i = 0;

	for (; i + VEC_W <= n; i += VEC_W)
		VEC(st)(x + i, VEC(gelu)(b ? VEC(ld)(x + i) + VEC(ld)(b + i) : VEC(ld)(x + i)));
	if (i < n) {
		int r = (int)(n - i);
		VEC_T v = VEC(ld_part)(x + i, r, 0.0f);
		if (b)
			v += VEC(ld_part)(b + i, r, 0.0f);
		VEC(st_part)(x + i, r, VEC(gelu)(v));
	}
}

static VEC_ATTR void VEC(vexp)(float *y, const float *x, size_t n)
{
	size_t i = 0;

	for (; i + VEC_W <= n; i += VEC_W)
		VEC(st)(y + i, VEC(exp)(VEC(ld)(x + i)));
	if (i < n) {
		int r = (int)(n - i);
		VEC_T v = VEC(exp)(VEC(ld_part)(x + i, r, 0.0f));

		VEC(st_part)(y + i, r, v);
	}
}

/* c[j] += b[j] */
static VEC_ATTR void VEC(add_row)(float *c, const float *b, int n)
{
	int j = 0;

	for (; j + VEC_W <= n; j += VEC_W)
		VEC(st)(c + j, VEC(ld)(c + j) + VEC(ld)(b + j));
	if (j < n) {
		VEC_T v = VEC(ld_part)(c + j, n - j, 0.0f) + VEC(ld_part)(b + j, n - j, 0.0f);

		VEC(st_part)(c + j, n - j, v);
	}
}

/* x[j] += g[j] * (c[j] + b[j]); b may be NULL */
static VEC_ATTR void VEC(gated_row)(float *x, const float *g, const float *c, const float *b, int n)
{
	int j = 0;

	for (; j + VEC_W <= n; j += VEC_W) {
		VEC_T v = VEC(ld)(c + j);
		if (b)
			v += VEC(ld)(b + j);
		VEC(st)(x + j, VEC(ld)(x + j) + VEC(ld)(g + j) * v);
	}
	if (j < n) {
		int r = n - j;
		VEC_T v = VEC(ld_part)(c + j, r, 0.0f);
		if (b)
			v += VEC(ld_part)(b + j, r, 0.0f);
		v = VEC(ld_part)(x + j, r, 0.0f) + VEC(ld_part)(g + j, r, 0.0f) * v;
		VEC(st_part)(x + j, r, v);
	}
}

/* x[j] = e^(x[j] - max x) over the row; returns their sum (the softmax
 * without its division). */
static VEC_ATTR float VEC(exp_row)(float *x, int n)
{
	VEC_T vm = VEC(splat)(-INFINITY), vs = VEC(splat)(0.0f);
	float m;
	int j = 0;

	for (; j + VEC_W <= n; j += VEC_W)
		vm = VEC(max)(vm, VEC(ld)(x + j));
	m = VEC(hmax)(vm);
	for (int k = j; k < n; k++)
		m = x[k] > m ? x[k] : m;
	for (j = 0; j + VEC_W <= n; j += VEC_W) {
		VEC_T e = VEC(exp)(VEC(ld)(x + j) - m);
		VEC(st)(x + j, e);
		vs += e;
	}
	if (j < n) {
		/* padding of -inf: e^-87 after the clamp, zeroed so it adds nothing */
		VEC_T e = VEC(exp)(VEC(ld_part)(x + j, n - j, -INFINITY) - m);
		for (int k = n - j; k < VEC_W; k++)
			e[k] = 0.0f;
		VEC(st_part)(x + j, n - j, e);
		vs += e;
	}
	return VEC(hsum)(vs);
}

/* y = layernorm(x) * (1 + scale) + shift over d values (eps 1e-6). */
static VEC_ATTR void VEC(ln_row)(const float *x, float *y, int d, const float *shift,
                                 const float *scale)
{
	VEC_T vs = VEC(splat)(0.0f), vq = VEC(splat)(0.0f);
	float mean, var, rstd;
	int j = 0;

	for (; j + VEC_W <= d; j += VEC_W)
		vs += VEC(ld)(x + j);
	mean = VEC(hsum)(vs);
	for (int k = j; k < d; k++)
		mean += x[k];
	mean /= (float)d;
	for (j = 0; j + VEC_W <= d; j += VEC_W) {
		VEC_T t = VEC(ld)(x + j) - mean;
		vq += t * t;
	}
	var = VEC(hsum)(vq);
	for (int k = j; k < d; k++)
		var += (x[k] - mean) * (x[k] - mean);
	var /= (float)d;
	rstd = 1.0f / sqrtf(var + 1e-6f);
	for (j = 0; j + VEC_W <= d; j += VEC_W) {
		VEC_T t = (VEC(ld)(x + j) - mean) * rstd;
		VEC(st)(y + j, t * (1.0f + VEC(ld)(scale + j)) + VEC(ld)(shift + j));
	}
	if (j < d) {
		int r = d - j;
		VEC_T t = (VEC(ld_part)(x + j, r, 0.0f) - mean) * rstd;
		VEC_T sc = VEC(ld_part)(scale + j, r, 0.0f), sh = VEC(ld_part)(shift + j, r, 0.0f);

		VEC(st_part)(y + j, r, t * (1.0f + sc) + sh);
	}
}

/* The instantiation's table for the dispatcher in dit_kernels.c. */
static const struct vec_ops VEC(ops) = {
    .name = VEC_NAME,
    .map_silu = VEC(map_silu),
    .map_gelu = VEC(map_gelu),
    .vexp = VEC(vexp),
    .add_row = VEC(add_row),
    .gated_row = VEC(gated_row),
    .exp_row = VEC(exp_row),
    .ln_row = VEC(ln_row),
};
