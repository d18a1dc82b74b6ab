# flite runner: flite's bundled voices (Debian ships no .pc file for flite).
RUNNER_LIBS_flite := -lflite_cmu_us_slt -lflite_cmu_us_rms -lflite_cmu_us_awb \
                     -lflite_cmu_us_kal16 -lflite_cmu_us_kal -lflite_usenglish -lflite_cmulex -lflite
