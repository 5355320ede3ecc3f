import Control.Concurrent (threadDelay)
import Control.Exception (evaluate)
import System.Exit
import System.IO

main :: IO ()
main = do
  mode <- getLine
  case mode of
    "hello" -> putStrLn "hello"
    "echo" -> getContents >>= putStr
    "re" -> error "boom"
    "cpu" -> evaluate (spin 0) >> return ()
    "sleep" -> threadDelay 30000000
    "mle" -> let xs = [1 ..] :: [Integer] in print (length xs + sum xs)
    "ole" -> mapM_ (const (putStr (replicate 65536 'x'))) [1 :: Integer ..]
    "exit" -> exitWith (ExitFailure 3)
    _ -> return ()

spin :: Int -> Int
spin n = if n < 0 then n else spin (n + 1)
