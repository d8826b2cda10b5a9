/*
 * cpu.c: what this CPU runs, read once from CPUID (and XGETBV: the OS must save the registers
 * too), so that one build picks its kernels at run time: the AVX-512 BF16 product of
 * gemm_bf16.c runs only where pn_cpu_has(PN_CPU_AVX512BF16) says so.
 */
#include "internal.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <cpuid.h>

static unsigned long long xcr0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static unsigned detect(void) {
    unsigned a, b, c, d, f = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
    const int amd = b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u; /* AuthenticAMD */
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned base = (a >> 8) & 0xf, family = base == 0xf ? base + ((a >> 20) & 0xff) : base;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!osxsave) return 0; /* no XGETBV: the OS saves no AVX state */
    const unsigned long long x = xcr0();
    const int ymm = (x & 0x6) == 0x6, zmm = ymm && (x & 0xE0) == 0xE0;
    const int tiles = (x & 0x60000) == 0x60000; /* XTILECFG and XTILEDATA */
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    if (ymm && avx && ((b >> 5) & 1) && fma) f |= PN_CPU_AVX2;
    if (zmm && ((b >> 16) & 1) && ((b >> 30) & 1) && ((b >> 17) & 1) && ((b >> 31) & 1))
        f |= PN_CPU_AVX512; /* F, BW, DQ, VL */
    /* Zen 4 (AMD family 25) runs a 512-bit FMA as two 256-bit halves: no faster than AVX2 */
    if ((f & PN_CPU_AVX512) && !(amd && family == 25)) f |= PN_CPU_FMA512;
    if (((d >> 24) & 1) && ((d >> 22) & 1)) f |= PN_CPU_AMX_BF16; /* AMX-TILE, AMX-BF16 */
    if (!tiles) f &= ~(unsigned)PN_CPU_AMX_BF16; /* the kernel may still grant it per process */
    const unsigned leaf7_max = a;
    if (leaf7_max >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        if ((f & PN_CPU_AVX512) && ((a >> 5) & 1)) f |= PN_CPU_AVX512BF16;
    }
    return f;
}
#else
static unsigned detect(void) { return 0; }
#endif

/* bit 31: read; the rest: what was found (read twice at worst, the same both times) */
static _Atomic unsigned found;
/* features the tests turn off (pn_cpu_disable), so they run the fallbacks on any CPU */
static _Atomic unsigned disabled;

unsigned pn_cpu_features(void) {
    unsigned f = atomic_load_explicit(&found, memory_order_relaxed);
    if (!(f & 0x80000000u)) {
        f = detect() | 0x80000000u;
        atomic_store_explicit(&found, f, memory_order_relaxed);
    }
    return f & ~0x80000000u & ~atomic_load_explicit(&disabled, memory_order_relaxed);
}

int pn_cpu_has(unsigned feature) { return (pn_cpu_features() & feature) == feature; }

void pn_cpu_disable(unsigned features) {
    atomic_store_explicit(&disabled, features, memory_order_relaxed);
}
