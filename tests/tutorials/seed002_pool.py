from multiprocessing import Pool
import time

# Function to be parallelized
def square(x):
    time.sleep(0.5) # Simulate work
    return x * x

# Main process
if __name__ == '__main__':
    # Create pool with 4 worker processes
    with Pool(4) as pool:
        # Map the function to data (parallel execution)
        results = pool.map(square, range(10))
        print("Squares:", results) # [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]

        # Async version with callback
        result = pool.apply_async(square, (10,), callback=print)
        result.wait() # Wait for async task to complete
