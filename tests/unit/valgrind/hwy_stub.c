/* hwy_stub.c: a stand-in for libhwy.so.1 (Highway), used only when the unit
 * tests run under valgrind (make check-valgrind).
 *
 * Why: libavcodec needs libjxl, which needs libhwy, and libhwy's load-time
 * constructor calibrates its timer with RDTSCP. This machine's CPUID does not
 * advertise RDTSCP (the hardware runs it anyway), and valgrind's VEX only
 * decodes RDTSCP when the host advertises it, so every program that loads
 * libavcodec dies with SIGILL under valgrind before main(). Debian 12 has no
 * newer valgrind (none in bookworm-backports), and a newer one would gate the
 * instruction the same way.
 *
 * mediad never decodes or encodes JPEG XL, so nothing calls into libhwy: these
 * are the five symbols libjxl 0.7 imports from it (version HWY_0, see
 * hwy_stub.map), each aborting loudly should anything ever call it. If a
 * newer libjxl imports more, the dynamic loader names the missing symbol.
 * Our own code and every other library run unchanged. */
#include <stdio.h>
#include <stdlib.h>

#define HWY_STUB(sym)                                                                      \
	void sym(void);                                                                    \
	void sym(void)                                                                     \
	{                                                                                  \
		fputs("valgrind hwy stub: libhwy " #sym " called\n", stderr);              \
		abort();                                                                   \
	}

HWY_STUB(_ZN3hwy14AlignedDeleter18DeleteAlignedArrayEPvPFvS1_S1_ES1_PFvS1_mE)
HWY_STUB(_ZN3hwy15GetChosenTargetEv)
HWY_STUB(_ZN3hwy16FreeAlignedBytesEPKvPFvPvS2_ES2_)
HWY_STUB(_ZN3hwy16SupportedTargetsEv)
HWY_STUB(_ZN3hwy20AllocateAlignedBytesEmPFPvS0_mES0_)
