// ncursesw for Swift. SwiftPM drops ncursesw.pc's -D_XOPEN_SOURCE, which hides the wide-character
// API (get_wch, cchar_t): define what it needs before curses.h. Macros and C globals Swift cannot
// use (getmaxyx, A_BOLD, COLOR_PAIR, stdscr, ESCDELAY) are wrapped in inline functions.
#ifndef NEKOCHAT_CNCURSESW_SHIM_H
#define NEKOCHAT_CNCURSESW_SHIM_H
#define NCURSES_WIDECHAR 1
#ifndef _XOPEN_SOURCE_EXTENDED
#define _XOPEN_SOURCE_EXTENDED 1
#endif
#include <locale.h>
#include <wchar.h>
#include <stdio.h>
#include <ncursesw/curses.h>

static inline void nk_setlocale_all(void) { setlocale(LC_ALL, ""); }
static inline int nk_wcwidth(unsigned int c) { return wcwidth((wchar_t)c); }

/// newterm on the process's terminal; NULL (not exit()) when TERM is unusable.
static inline SCREEN *nk_newterm(void) { return newterm(NULL, stdout, stdin); }
static inline WINDOW *nk_stdscr(void) { return stdscr; }
static inline int nk_lines(void) { return LINES; }
static inline int nk_cols(void) { return COLS; }
static inline int nk_colors(void) { return COLORS; }
static inline void nk_set_escdelay(int ms) { set_escdelay(ms); }

static inline int nk_attr_bold(void) { return A_BOLD; }
static inline int nk_attr_dim(void) { return A_DIM; }
static inline int nk_attr_reverse(void) { return A_REVERSE; }
static inline int nk_attr_italic(void) { return A_ITALIC; }
static inline int nk_attr_underline(void) { return A_UNDERLINE; }

/// Writes one character cell (a base character plus combining marks) with attributes and a colour pair.
static inline int nk_put_cell(int y, int x, const wchar_t *wch, int attrs, short pair) {
    cchar_t cell;
    if (setcchar(&cell, wch, (attr_t)attrs, pair, NULL) != OK) return ERR;
    return mvadd_wch(y, x, &cell);
}

/// One key: returns KEY_CODE_YES for function keys, OK for characters, ERR on timeout.
static inline int nk_get_wch(unsigned int *out) {
    wint_t ch = 0;
    int r = get_wch(&ch);
    *out = (unsigned int)ch;
    return r;
}

static inline int nk_key_resize(void) { return KEY_RESIZE; }
static inline int nk_key_code_yes(void) { return KEY_CODE_YES; }
static inline int nk_key_mouse(void) { return KEY_MOUSE; }

/// Mouse wheel: enable (or disable) reporting and read the next event's button state.
static inline void nk_enable_mouse(int on) { mousemask(on ? (BUTTON4_PRESSED | BUTTON5_PRESSED) : 0, NULL); }
static inline const char *nk_keyname(int code) { return keyname(code); }
static inline int nk_mouse_wheel(void) {
    MEVENT e;
    if (getmouse(&e) != OK) return 0;
    if (e.bstate & BUTTON4_PRESSED) return -1;
#ifdef BUTTON5_PRESSED
    if (e.bstate & BUTTON5_PRESSED) return 1;
#endif
    return 0;
}
#include <signal.h>
#include <termios.h>
#include <unistd.h>
#endif
