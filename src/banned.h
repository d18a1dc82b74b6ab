/* banned.h: unsafe C library calls made into compile errors.
 *
 * Included last by util.h, after the system headers, so a use of one of
 * these in mediad's own code fails to build with a message naming the call.
 * Use snprintf, buf_* (buf.h) or memcpy with an explicit length instead. */
#ifndef MEDIAD_BANNED_H
#define MEDIAD_BANNED_H

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) BANNED(strncat)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef gets
#define gets(x) BANNED(gets)

#endif
