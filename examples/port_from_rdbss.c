/* Code written against the RDBSS MID_ATLAS routines compiles unchanged against midatlax.h. */
#include <stdio.h>
#include <stdlib.h>

#include "midatlas/midatlax.h"

typedef struct { int opcode; } RX_CONTEXT_LITE;

static void FreeContext(PVOID context) { free(context); }

int main(void) {
  PRX_MID_ATLAS atlas = RxCreateMidAtlas(1024, 50);
  if (atlas == NULL) return 1;
  RX_CONTEXT_LITE* request = malloc(sizeof *request);
  if (request == NULL) return 1;
  request->opcode = 0x2E; /* SMB_COM_READ_ANDX */
  USHORT mid;
  if (RxAssociateContextWithMid(atlas, request, &mid) != STATUS_SUCCESS) return 1;
  RX_CONTEXT_LITE* found = RxMapMidToContext(atlas, mid);   /* every received packet */
  PVOID finished = NULL;
  if (RxMapAndDissociateMidFromContext(atlas, mid, &finished) != STATUS_SUCCESS) return 1;
  printf("MID %u: opcode 0x%X, %u in use\n", (unsigned)mid, (unsigned)found->opcode,
         (unsigned)RxGetNumberOfMidsInUse(atlas));
  free(finished);
  RxDestroyMidAtlas(atlas, FreeContext); /* frees whatever is still associated */
  return 0;
}
