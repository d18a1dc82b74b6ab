/* bench/audio_direct.c: the audio libraries called directly, for bench/audio.sh.
 *
 * The baseline the server's audio runners are measured against: the same
 * input through pocketsphinx (or flite) in one process, with no HTTP, no
 * IPC and no worker. The decode follows what a plain pocketsphinx program
 * does with a WAV file: read it with libsndfile, feed 4096-sample chunks,
 * close an utterance whenever the voice detector hears its end; like the
 * runner, it starts every run from the model's initial cepstral mean, so
 * every run does the same work. flite gets the whole text in one call.
 *
 *   audio_direct sphinx MODEL_DIR FILE.wav REPS [SERVER_CMD]
 *   audio_direct flite VOICE TEXT_FILE REPS [SERVER_CMD]
 *
 * SERVER_CMD (run with popen after each direct run, so the two alternate
 * and a machine whose load drifts treats them alike) must print the
 * seconds one server request took. Prints "<runner> audio_s=<seconds of
 * audio> median_s=<seconds per direct run> min_s=<...> rtf=<median / audio>
 * server_median_s=<...> text=<transcript or voice>". One untimed run goes
 * first (models loaded, caches warm). */
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <flite/flite.h>
#include <pocketsphinx.h>
#include <sphinxbase/cmn.h>
#include <sphinxbase/err.h>
#include <sphinxbase/feat.h>
#pragma GCC diagnostic pop

#define CHUNK 4096
#define MAX_REPS 50

cst_voice *register_cmu_us_slt(const char *voxdir);
cst_voice *register_cmu_us_rms(const char *voxdir);
cst_voice *register_cmu_us_awb(const char *voxdir);
cst_voice *register_cmu_us_kal16(const char *voxdir);

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static const char *server_cmd;
static double server_t[MAX_REPS];

/* Run the server command once; its first number is the request's time. */
static void time_server(int i)
{
	FILE *p;
	double t = NAN;

	if (!server_cmd)
		return;
	p = popen(server_cmd, "r");
	if (!p || fscanf(p, "%lf", &t) != 1)
		t = NAN;
	if (p)
		pclose(p);
	server_t[i] = t;
}

static void report(const char *what, double audio_s, double *t, int reps, const char *text)
{
	qsort(t, (size_t)reps, sizeof(*t), cmp_double);
	qsort(server_t, (size_t)reps, sizeof(*server_t), cmp_double);
	printf("%s audio_s=%.3f median_s=%.4f min_s=%.4f rtf=%.4f server_median_s=%.4f text=%s\n",
	       what, audio_s, t[reps / 2], t[0], t[reps / 2] / audio_s,
	       server_cmd ? server_t[reps / 2] : NAN, text);
}

/* Transcribe path once: read, decode, return the words (static buffer). */
static const char *sphinx_once(ps_decoder_t *ps, const char *path, double *audio_s)
{
	static char text[65536];
	SF_INFO info = {0};
	SNDFILE *sf = sf_open(path, SFM_READ, &info);
	short *pcm;
	sf_count_t n;
	int in_utt = 0;
	size_t used = 0;

	if (!sf || info.channels != 1 || info.samplerate != 16000) {
		fprintf(stderr, "%s: need a 16 kHz mono file\n", path);
		exit(1);
	}
	pcm = malloc((size_t)info.frames * sizeof(*pcm));
	n = sf_readf_short(sf, pcm, info.frames);
	sf_close(sf);
	*audio_s = (double)n / 16000.0;
	text[0] = 0;
	ps_start_stream(ps);
	ps_start_utt(ps);
	for (sf_count_t off = 0; off < n; off += CHUNK) {
		size_t k = (size_t)(n - off < CHUNK ? n - off : CHUNK);
		int last = off + CHUNK >= n, speech;

		ps_process_raw(ps, pcm + off, k, FALSE, FALSE);
		speech = ps_get_in_speech(ps);
		in_utt |= speech;
		if (last || (in_utt && !speech)) {
			const char *hyp;
			ps_end_utt(ps);
			hyp = ps_get_hyp(ps, NULL);
			if (hyp && hyp[0])
				used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s",
							 used ? " " : "", hyp);
			if (used >= sizeof(text))
				used = sizeof(text) - 1;
			if (!last)
				ps_start_utt(ps);
			in_utt = 0;
		}
	}
	free(pcm);
	return text;
}

static int bench_sphinx(const char *dir, const char *path, int reps)
{
	char hmm[4096], lm[4096], dict[4096];
	double t[MAX_REPS], audio_s = 0;
	const char *text = "";
	cmd_ln_t *cl;
	ps_decoder_t *ps;
	cmn_t *cmn;
	mfcc_t cmn0[64];

	snprintf(hmm, sizeof(hmm), "%s/en-us", dir);
	snprintf(lm, sizeof(lm), "%s/en-us.lm.bin", dir);
	snprintf(dict, sizeof(dict), "%s/cmudict-en-us.dict", dir);
	err_set_logfp(NULL);
	cl = cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", hmm, "-lm", lm, "-dict", dict, "-samprate",
			 "16000", NULL);
	ps = cl ? ps_init(cl) : NULL;
	if (!ps) {
		fprintf(stderr, "pocketsphinx init failed\n");
		return 1;
	}
	cmn = ps_get_feat(ps)->cmn_struct;
	memcpy(cmn0, cmn->cmn_mean, (size_t)cmn->veclen * sizeof(*cmn0));
	for (int i = -1; i < reps; i++) {
		double t0 = now();
		cmn_live_set(cmn, cmn0);
		text = sphinx_once(ps, path, &audio_s);
		if (i >= 0) {
			t[i] = now() - t0;
			time_server(i);
		}
	}
	report("sphinx", audio_s, t, reps, text);
	ps_free(ps);
	cmd_ln_free_r(cl);
	return 0;
}

static int bench_flite(const char *voice_name, const char *path, int reps)
{
	char text[65536];
	double t[MAX_REPS], audio_s = 0;
	cst_voice *v;
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f) {
		perror(path);
		return 1;
	}
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = 0;
	flite_init();
	v = !strcmp(voice_name, "rms")     ? register_cmu_us_rms(NULL)
	    : !strcmp(voice_name, "awb")   ? register_cmu_us_awb(NULL)
	    : !strcmp(voice_name, "kal16") ? register_cmu_us_kal16(NULL)
					   : register_cmu_us_slt(NULL);
	for (int i = -1; i < reps; i++) {
		double t0 = now();
		cst_wave *w = flite_text_to_wave(text, v);
		audio_s = (double)w->num_samples / w->sample_rate;
		delete_wave(w);
		if (i >= 0) {
			t[i] = now() - t0;
			time_server(i);
		}
	}
	report("flite", audio_s, t, reps, voice_name);
	return 0;
}

int main(int argc, char **argv)
{
	int reps = argc > 4 ? atoi(argv[4]) : 0;

	if (argc < 5 || argc > 6 || reps < 1 || reps > MAX_REPS) {
		fprintf(stderr,
			"usage: %s sphinx MODEL_DIR FILE.wav REPS [SERVER_CMD] | "
			"flite VOICE TEXT REPS [SERVER_CMD]\n", argv[0]);
		return 2;
	}
	server_cmd = argc == 6 ? argv[5] : NULL;
	if (!strcmp(argv[1], "sphinx"))
		return bench_sphinx(argv[2], argv[3], reps);
	if (!strcmp(argv[1], "flite"))
		return bench_flite(argv[2], argv[3], reps);
	fprintf(stderr, "unknown runner %s\n", argv[1]);
	return 2;
}
