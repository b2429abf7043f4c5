// orval configuration: generates src/generated/ from the repository's committed openapi.json (axios client, split
// mode: operations in runbox.ts, schemas in runbox.schemas.ts), every request going through src/mutator.ts.
// Regenerate with `bash clients/typescript/scripts/generate.sh`; never edit src/generated/ by hand.
module.exports = {
  runbox: {
    input: { target: '../../openapi.json' },
    output: {
      mode: 'split',
      target: 'src/generated/runbox.ts',
      client: 'axios',
      prettier: false,
      override: {
        mutator: { path: 'src/mutator.ts', name: 'runboxRequest' },
      },
    },
  },
};
